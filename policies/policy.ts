import type { GatewayError } from '../gateway/errors.ts';
import type { RequestContext } from '../gateway/context.ts';

/**
 * The closed protocol between a policy and the pipeline (Envoy's filter status): a
 * policy never moves the request itself, it answers continue or reject. Only
 * `gateway/pipeline.ts` iterates policies.
 */
export type Verdict =
  | { readonly kind: 'continue' }
  | { readonly kind: 'reject'; readonly error: GatewayError };

/** The shared, allocation-free "go on" verdict. */
export const CONTINUE: Verdict = Object.freeze({ kind: 'continue' });

/** Reject with a catalogue error. */
export function reject(error: GatewayError): Verdict {
  return { kind: 'reject', error };
}

/**
 * A policy compiled from config once per snapshot. `evaluate` runs per request and stays
 * synchronous whenever it can (a promise costs a microtask on the hot path).
 */
export interface Policy {
  readonly name: string;
  evaluate(ctx: RequestContext): Verdict | Promise<Verdict>;
}
