import type { LiveDoc } from '../live-config/live-doc.ts';

/**
 * What the primary and its workers say to each other over the cluster's IPC channel. Every
 * message carries a `switchyard:` type, so prom-client's or Node's own messages on the same
 * channel are told apart. Documents travel as JSON (the channel's default serialization):
 * a live document is plain JSON already and never holds a secret in clear.
 */

/** How many workers the primary runs: set in each worker's environment (per-process limits divide by it). */
export const WORKERS_ENV = 'SWITCHYARD_CLUSTER_WORKERS';

/** A request a worker makes of the primary. */
export type Call =
  /** `/metrics` on this worker: every worker's registry, aggregated. */
  | { readonly op: 'metrics' }
  /** {@link LiveBackend.load} against the primary's store. */
  | { readonly op: 'live-load' }
  /** {@link LiveBackend.write} against the primary's store. */
  | { readonly op: 'live-write'; readonly expected: number; readonly doc: LiveDoc };

/** Worker → primary. */
export type WorkerMessage =
  /** The worker's gateway listens and takes traffic. */
  | { readonly type: 'switchyard:ready' }
  /** The worker cannot start; it exits with `code` right after. The message is for the operator. */
  | { readonly type: 'switchyard:fatal'; readonly message: string; readonly code: number }
  | { readonly type: 'switchyard:call'; readonly id: number; readonly call: Call }
  /** The answer to a `collect`: `registry.getMetricsAsJSON()`, or why not. */
  | { readonly type: 'switchyard:metrics-json'; readonly id: number; readonly metrics?: unknown[]; readonly error?: string };

/** Primary → worker. */
export type PrimaryMessage =
  | { readonly type: 'switchyard:reply'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly type: 'switchyard:reply'; readonly id: number; readonly ok: false; readonly error: string }
  /** Send your registry's metrics as JSON (for an aggregate another worker was asked for). */
  | { readonly type: 'switchyard:collect'; readonly id: number }
  /** A live document another worker stored. */
  | { readonly type: 'switchyard:live-doc'; readonly doc: LiveDoc }
  /** A signal the primary received, passed on (drain, or reload the config file). */
  | { readonly type: 'switchyard:signal'; readonly signal: StopSignal | 'SIGHUP' };

export type StopSignal = 'SIGTERM' | 'SIGINT';

/** Whether `m` is one of ours (anything else on the channel is someone else's business). */
export function isOurs<T extends { readonly type: string }>(m: unknown): m is T {
  return !!m && typeof m === 'object' && typeof (m as { type?: unknown }).type === 'string'
    && (m as { type: string }).type.startsWith('switchyard:');
}
