import assert from 'node:assert/strict';
import { circuitBreakerFactory } from '../../../../policies/circuit-breaker/circuit-breaker.ts';
import type { Outcome, Policy, PolicyLogger, PolicyScope, Verdict } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, scopeOf, type FakeDeps } from '../../../helpers/policy.ts';

/** What the breaker's unit tests share: outcomes of every kind, a breaker on a manual clock, and how to drive it. */

// ---- fixtures ------------------------------------------------------------------------------

export const OK: Outcome = { status: 200, error: undefined, termination: 'completed', connectFailed: false, instance: 'http://10.0.0.1:5001', durationMs: 5 };
export const MODEL_500: Outcome = { ...OK, status: 500 };
export const REFUSED: Outcome = { ...OK, status: 502, error: 'BadGateway', termination: 'upstream_reset', connectFailed: true };
export const TIMED_OUT: Outcome = { ...OK, status: 504, error: 'GatewayTimeout', termination: 'upstream_timeout' };
export const CUT_MIDSTREAM: Outcome = { ...OK, status: 200, termination: 'upstream_reset' };
export const NOT_FOUND: Outcome = { ...OK, status: 404 };
export const ABORTED: Outcome = { ...OK, status: 499, termination: 'client_aborted' };
export const THROTTLED: Outcome = { ...OK, status: 429, error: 'TooManyPendingRequests', instance: undefined };
export const QUEUE_TIMEOUT: Outcome = { ...OK, status: 429, error: 'TooManyPendingRequests', instance: undefined };
export const NO_READY: Outcome = { ...OK, status: 503, error: 'NoReadyInstance', instance: undefined };
export const BAD_UPLOAD: Outcome = { ...OK, status: 408, error: 'RequestTimeout', termination: 'client_bad_request', instance: undefined };

export type Settings = { error_threshold_percent?: number; volume_threshold?: number; window_s?: number; reset_timeout_s?: number };

export function scope(cb: Settings | undefined, deployment = 'blue'): PolicyScope {
  const s = scopeOf({
    endpoints: {
      cars: {
        keys: { primary: 'k-breaker-test-1' },
        deployments: { [deployment]: { instances: ['http://10.0.0.1:5001'], ...(cb ? { circuit_breaker: cb } : {}) } },
      },
    },
  });
  const config = s.endpointConfig.deployments[deployment];
  assert.ok(config);
  return { ...s, deployment: { name: deployment, config } };
}

export interface Logged { readonly level: 'info' | 'warn' | 'error'; readonly msg: string; readonly obj: Record<string, unknown> }

export function deps(): FakeDeps & { lines: Logged[] } {
  const lines: Logged[] = [];
  const log: PolicyLogger = {
    info: (obj, msg) => lines.push({ level: 'info', msg, obj: obj as Record<string, unknown> }),
    warn: (obj, msg) => lines.push({ level: 'warn', msg, obj: obj as Record<string, unknown> }),
    error: (obj, msg) => lines.push({ level: 'error', msg, obj: obj as Record<string, unknown> }),
  };
  return Object.assign(fakeDeps({ log }), { lines });
}

export function breaker(cb: Settings, d = deps()): { p: Policy; d: ReturnType<typeof deps>; gauge: () => number } {
  const p = circuitBreakerFactory.create(scope(cb), d);
  assert.ok(p, 'a deployment with circuit_breaker gets a breaker');
  const gauge = d.gauges.breakers.get('cars/blue');
  assert.ok(gauge, 'the breaker reports its state');
  return { p, d, gauge };
}

export const ctx = new FakeContext({ deployment: 'blue' });

export function verdict(p: Policy): Verdict {
  const v = p.evaluate(ctx);
  assert.ok(!(v instanceof Promise), 'the breaker decides synchronously');
  return v;
}

/** One exchange: evaluate, and if admitted end it with `outcome`. Returns what the breaker said. */
export function exchange(p: Policy, outcome: Outcome): Verdict {
  const v = verdict(p);
  if (v.kind === 'continue') {
    assert.ok(v.onDone, 'an admitted exchange reports its outcome back');
    v.onDone(outcome);
  }
  return v;
}

/** Let opossum tally what it was fired with (it settles a fire() a microtask or two later). */
export const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** `n` exchanges in a row (all admitted: the breaker decides between requests, not within a tick), then settle. */
export async function run(p: Policy, outcome: Outcome, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal(exchange(p, outcome).kind, 'continue', `exchange ${i + 1} admitted`);
  await settle();
}

/** The refusal's Retry-After, asserting it is a 503 CircuitOpen counted as breaker_open. */
export function refusedFor(v: Verdict): string | undefined {
  assert.equal(v.kind, 'reject', 'refused while open');
  if (v.kind !== 'reject') return undefined;
  assert.equal(v.error.code, 'CircuitOpen');
  assert.equal(v.error.status, 503);
  assert.equal(v.reason, 'breaker_open');
  return v.error.headers?.['retry-after'];
}

export const isOpen = (p: Policy): boolean => verdict(p).kind === 'reject';

// ---- compile ---------------------------------------------------------------------------------
