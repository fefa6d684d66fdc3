import type { WriteOutcome } from '../live-config/live-doc.ts';

// What the Redis users of gateway/state/ (limits, the live document) make of an ioredis error.

/** A short, secret-free reason (ioredis messages name host:port at most). */
export function reasonOf(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e?.message === 'Command timed out') return 'timeout';
  if (typeof e?.message === 'string' && e.message.startsWith("Stream isn't writeable")) return 'not connected';
  if (typeof e?.code === 'string') return e.code;
  return typeof e?.message === 'string' ? e.message.slice(0, 120) : 'unknown';
}

/**
 * Whether a write that failed with `err` may have landed. Only two failures are sure it did
 * not: ioredis refused to send (no connection: it queues nothing offline), or Redis answered
 * with an error (the script's first write is where Redis refuses one: OOM, READONLY, so it
 * wrote nothing). A timeout, or a connection lost with the command in flight, may have
 * followed the write's arrival: the watch delivers it if it landed.
 */
export function outcomeOf(err: unknown): WriteOutcome {
  const e = err as { name?: unknown; message?: unknown } | undefined;
  if (typeof e?.message === 'string' && e.message.startsWith("Stream isn't writeable")) return 'not_stored';
  if (e?.name === 'ReplyError') return 'not_stored';
  return 'unknown';
}
