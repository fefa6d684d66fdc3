import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** A request on this connection is being served (others it pipelined wait their turn). */
export const BUSY = Symbol('switchyard.busy');
/** Requests the client pipelined behind the one in flight. */
export const QUEUE = Symbol('switchyard.queue');
/** `performance.now()` when the connection last fell idle (or opened). */
export const IDLE_SINCE = Symbol('switchyard.idleSince');

/** A client connection on an invocation listener, with the walk's bookkeeping on it. */
export type Connection = Socket & { [BUSY]?: boolean; [QUEUE]?: (() => void)[]; [IDLE_SINCE]?: number };

/** The connection has nothing in flight and has been idle at least `ms`. */
export function idleFor(conn: Connection, ms: number, now = performance.now()): boolean {
  return !conn[BUSY] && now - (conn[IDLE_SINCE] ?? 0) >= ms;
}
