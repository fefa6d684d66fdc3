import assert from 'node:assert/strict';
import { test } from 'node:test';
import { circuitBreakerFactory } from '../../../../policies/circuit-breaker/circuit-breaker.ts';
import { DEPLOYMENT_POLICIES } from '../../../../policies/index.ts';
import type { Outcome, Policy, PolicyLogger, PolicyScope, Verdict } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, scopeOf, type FakeDeps } from '../../../helpers/policy.ts';

// ---- fixtures ------------------------------------------------------------------------------

const OK: Outcome = { status: 200, error: undefined, termination: 'completed', connectFailed: false, instance: 'http://10.0.0.1:5001', durationMs: 5 };
const MODEL_500: Outcome = { ...OK, status: 500 };
const REFUSED: Outcome = { ...OK, status: 502, error: 'BadGateway', termination: 'upstream_reset', connectFailed: true };
const TIMED_OUT: Outcome = { ...OK, status: 504, error: 'GatewayTimeout', termination: 'upstream_timeout' };
const CUT_MIDSTREAM: Outcome = { ...OK, status: 200, termination: 'upstream_reset' };
const NOT_FOUND: Outcome = { ...OK, status: 404 };
const ABORTED: Outcome = { ...OK, status: 499, termination: 'client_aborted' };
const THROTTLED: Outcome = { ...OK, status: 429, error: 'TooManyPendingRequests', instance: undefined };
const QUEUE_TIMEOUT: Outcome = { ...OK, status: 429, error: 'TooManyPendingRequests', instance: undefined };
const NO_READY: Outcome = { ...OK, status: 503, error: 'NoReadyInstance', instance: undefined };
const BAD_UPLOAD: Outcome = { ...OK, status: 408, error: 'RequestTimeout', termination: 'client_bad_request', instance: undefined };

type Settings = { error_threshold_percent?: number; volume_threshold?: number; window_s?: number; reset_timeout_s?: number };

function scope(cb: Settings | undefined, deployment = 'blue'): PolicyScope {
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

interface Logged { readonly level: 'info' | 'warn' | 'error'; readonly msg: string; readonly obj: Record<string, unknown> }

function deps(): FakeDeps & { lines: Logged[] } {
  const lines: Logged[] = [];
  const log: PolicyLogger = {
    info: (obj, msg) => lines.push({ level: 'info', msg, obj: obj as Record<string, unknown> }),
    warn: (obj, msg) => lines.push({ level: 'warn', msg, obj: obj as Record<string, unknown> }),
    error: (obj, msg) => lines.push({ level: 'error', msg, obj: obj as Record<string, unknown> }),
  };
  return Object.assign(fakeDeps({ log }), { lines });
}

function breaker(cb: Settings, d = deps()): { p: Policy; d: ReturnType<typeof deps>; gauge: () => number } {
  const p = circuitBreakerFactory.create(scope(cb), d);
  assert.ok(p, 'a deployment with circuit_breaker gets a breaker');
  const gauge = d.gauges.breakers.get('cars/blue');
  assert.ok(gauge, 'the breaker reports its state');
  return { p, d, gauge };
}

const ctx = new FakeContext({ deployment: 'blue' });

function verdict(p: Policy): Verdict {
  const v = p.evaluate(ctx);
  assert.ok(!(v instanceof Promise), 'the breaker decides synchronously');
  return v;
}

/** One exchange: evaluate, and if admitted end it with `outcome`. Returns what the breaker said. */
function exchange(p: Policy, outcome: Outcome): Verdict {
  const v = verdict(p);
  if (v.kind === 'continue') {
    assert.ok(v.onDone, 'an admitted exchange reports its outcome back');
    v.onDone(outcome);
  }
  return v;
}

/** Let opossum tally what it was fired with (it settles a fire() a microtask or two later). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** `n` exchanges in a row (all admitted: the breaker decides between requests, not within a tick), then settle. */
async function run(p: Policy, outcome: Outcome, n: number): Promise<void> {
  for (let i = 0; i < n; i++) assert.equal(exchange(p, outcome).kind, 'continue', `exchange ${i + 1} admitted`);
  await settle();
}

/** The refusal's Retry-After, asserting it is a 503 CircuitOpen counted as breaker_open. */
function refusedFor(v: Verdict): string | undefined {
  assert.equal(v.kind, 'reject', 'refused while open');
  if (v.kind !== 'reject') return undefined;
  assert.equal(v.error.code, 'CircuitOpen');
  assert.equal(v.error.status, 503);
  assert.equal(v.reason, 'breaker_open');
  return v.error.headers?.['retry-after'];
}

const isOpen = (p: Policy): boolean => verdict(p).kind === 'reject';

// ---- compile ---------------------------------------------------------------------------------

test('compile: a deployment without circuit_breaker gets no breaker, one with it does (first in the deployment stage)', () => {
  assert.equal(circuitBreakerFactory.stage, 'deployment');
  assert.equal(DEPLOYMENT_POLICIES[0], circuitBreakerFactory, 'the breaker refuses before a request queues for a slot');
  const d = deps();
  assert.equal(circuitBreakerFactory.create(scope(undefined), d), undefined);
  assert.equal(d.gauges.breakers.size, 0, 'no breaker, no gauge');
  // The endpoint stage has no deployment yet.
  const { deployment: _, ...endpointScope } = scope({});
  assert.equal(circuitBreakerFactory.create(endpointScope, d), undefined);
  const p = circuitBreakerFactory.create(scope({}), d);
  assert.ok(p);
  assert.equal(p.name, 'cars/blue.circuit-breaker');
  assert.equal(d.gauges.breakers.get('cars/blue')?.(), 0, 'starts closed');
});

test('closed: every request gets the same precomputed verdict (no per-request allocation)', () => {
  const { p } = breaker({});
  const a = verdict(p);
  const b = verdict(p);
  assert.equal(a.kind, 'continue');
  assert.equal(a, b, 'one shared verdict object');
  assert.ok(a.kind === 'continue' && typeof a.onDone === 'function');
});

// ---- opening -------------------------------------------------------------------------------

test('opens when the window holds volume_threshold requests and error_threshold_percent of them failed (>=)', async () => {
  const { p, gauge } = breaker({ error_threshold_percent: 50, volume_threshold: 20 });
  await run(p, OK, 10);
  await run(p, MODEL_500, 9);
  assert.equal(isOpen(p), false, '19 requests: under the volume threshold');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true, '20 requests, 10 failed: 50% >= 50%');
  assert.equal(gauge(), 1);
});

test('stays closed below the threshold, however many requests', async () => {
  const { p } = breaker({ error_threshold_percent: 50, volume_threshold: 20 });
  await run(p, OK, 11);
  await run(p, MODEL_500, 9);
  assert.equal(isOpen(p), false, '45% failed');
  await run(p, OK, 100);
  await run(p, MODEL_500, 100);
  assert.equal(isOpen(p), false, '109 of 220 failed: 49.5%');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), false, '110 of 221: 49.8%');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true, '111 of 222: 50%');
});

test('the volume threshold: failures alone do not open a breaker that has seen too few requests', async () => {
  const { p } = breaker({ error_threshold_percent: 50, volume_threshold: 5 });
  await run(p, MODEL_500, 4);
  assert.equal(isOpen(p), false, '4 of 4 failed, but only 4 requests');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true);
});

test('error_threshold_percent 100 opens only when every request in the window failed', async () => {
  const { p } = breaker({ error_threshold_percent: 100, volume_threshold: 3 });
  await run(p, OK, 1);
  await run(p, MODEL_500, 50);
  assert.equal(isOpen(p), false, '50 of 51');
  const fresh = breaker({ error_threshold_percent: 100, volume_threshold: 3 }).p;
  await run(fresh, MODEL_500, 3);
  assert.equal(isOpen(fresh), true);
});

test('what counts as a failure: 5xx from the model, refused connects, timeouts, streams cut midway', async () => {
  for (const [name, o] of [['model 500', MODEL_500], ['connect refused', REFUSED], ['504', TIMED_OUT], ['cut midway', CUT_MIDSTREAM]] as const) {
    const { p } = breaker({ error_threshold_percent: 100, volume_threshold: 3 });
    await run(p, o, 3);
    assert.equal(isOpen(p), true, `${name} is a failure`);
  }
});

test('a 4xx from the model is a success: it counts as a request, not as a failure', async () => {
  const { p } = breaker({ error_threshold_percent: 50, volume_threshold: 20 });
  await run(p, MODEL_500, 10);
  await run(p, NOT_FOUND, 11);
  assert.equal(isOpen(p), false, '10 of 21 failed');
  const q = breaker({ error_threshold_percent: 50, volume_threshold: 20 }).p;
  await run(q, NOT_FOUND, 10);
  await run(q, MODEL_500, 10);
  assert.equal(isOpen(q), true, 'the 404s made up the volume: 10 of 20 failed');
});

test('client aborts, throttles by a later policy, NoReadyInstance and bad uploads are not counted at all', async () => {
  const ignored = [ABORTED, THROTTLED, QUEUE_TIMEOUT, NO_READY, BAD_UPLOAD];
  // Not as failures: 9 failures of 20 counted requests, with 50 ignored ones besides.
  const { p } = breaker({ error_threshold_percent: 50, volume_threshold: 20 });
  await run(p, OK, 11);
  await run(p, MODEL_500, 9);
  for (const o of ignored) await run(p, o, 10);
  assert.equal(isOpen(p), false, 'ignored outcomes are not failures');
  // Not as requests either: 10 failures with 50 ignored stays under the volume threshold.
  const q = breaker({ error_threshold_percent: 50, volume_threshold: 20 }).p;
  await run(q, MODEL_500, 10);
  for (const o of ignored) await run(q, o, 10);
  assert.equal(isOpen(q), false, 'ignored outcomes are not requests');
  await run(q, MODEL_500, 10);
  assert.equal(isOpen(q), true, 'the breaker still counts what matters');
});

// ---- the window -------------------------------------------------------------------------------

test('the window slides on the injected clock: failures count for window_s, then age out', async () => {
  const a = breaker({ error_threshold_percent: 50, volume_threshold: 20, window_s: 10 });
  await run(a.p, MODEL_500, 15);
  a.d.manual.advance(9_000);
  await run(a.p, MODEL_500, 5);
  assert.equal(isOpen(a.p), true, 'failures 9 s old are still in a 10 s window');

  const b = breaker({ error_threshold_percent: 50, volume_threshold: 20, window_s: 10 });
  await run(b.p, MODEL_500, 15);
  b.d.manual.advance(10_000);
  await run(b.p, MODEL_500, 5);
  assert.equal(isOpen(b.p), false, 'failures 10 s old have left the window: 5 requests');
  await run(b.p, MODEL_500, 15);
  assert.equal(isOpen(b.p), true);
});

test('the window slides in tenths: old successes leave too, so the rate follows recent traffic', async () => {
  const { p, d } = breaker({ error_threshold_percent: 50, volume_threshold: 10, window_s: 1 });
  await run(p, OK, 100);
  d.manual.advance(500);
  await run(p, MODEL_500, 20);
  assert.equal(isOpen(p), false, '20 of 120');
  d.manual.advance(600);
  // The successes, 1.1 s old, are gone; the failures (0.6 s) remain.
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true, '21 of 21 in the last second');
});

test('a long silence empties the window (the catch-up rotates at most one window)', async () => {
  const { p, d } = breaker({ error_threshold_percent: 50, volume_threshold: 4, window_s: 10 });
  await run(p, MODEL_500, 3);
  d.manual.advance(86_400_000);
  await run(p, MODEL_500, 3);
  assert.equal(isOpen(p), false, 'yesterday\'s failures do not count');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true);
});

// ---- open, half-open, probe ------------------------------------------------------------------

test('open: 503 CircuitOpen with Retry-After counting down to the half-open, never below 1', async () => {
  const { p, d } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  await run(p, MODEL_500, 2);
  assert.equal(refusedFor(verdict(p)), '30');
  d.manual.advance(12_500);
  assert.equal(refusedFor(verdict(p)), '18', '17.5 s left, rounded up');
  d.manual.advance(17_200);
  assert.equal(refusedFor(verdict(p)), '1', '0.3 s left');
});

test('fractional reset_timeout_s: Retry-After is still at least 1', async () => {
  const { p } = breaker({ volume_threshold: 2, reset_timeout_s: 0.25 });
  await run(p, MODEL_500, 2);
  assert.equal(refusedFor(verdict(p)), '1');
});

test('half-open: after reset_timeout_s exactly one probe goes through; the rest are refused while it runs', async () => {
  const { p, d, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  await run(p, MODEL_500, 2);
  assert.equal(gauge(), 1, 'open');
  d.manual.advance(29_999);
  assert.equal(isOpen(p), true);
  d.manual.advance(1);
  assert.equal(gauge(), 0.5, 'half-open: the next request probes');
  const probe = verdict(p);
  assert.equal(probe.kind, 'continue', 'the probe');
  assert.equal(refusedFor(verdict(p)), '1', 'a second request waits for the probe');
  assert.equal(refusedFor(verdict(p)), '1');
  assert.equal(gauge(), 0.5, 'half-open while probing');
  assert.ok(probe.kind === 'continue' && probe.onDone);
  probe.onDone(OK);
  assert.equal(gauge(), 0, 'closed by the probe');
  assert.equal(verdict(p).kind, 'continue');
});

test('a failed probe re-opens for another reset_timeout_s', async () => {
  const { p, d, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  await run(p, MODEL_500, 2);
  d.manual.advance(30_000);
  assert.equal(exchange(p, TIMED_OUT).kind, 'continue', 'the probe went through and timed out');
  assert.equal(gauge(), 1, 'open again');
  assert.equal(refusedFor(verdict(p)), '30', 'the wait starts over');
  d.manual.advance(29_000);
  assert.equal(refusedFor(verdict(p)), '1');
  d.manual.advance(1_000);
  assert.equal(exchange(p, OK).kind, 'continue', 'the second probe');
  assert.equal(gauge(), 0);
});

test('a probe that tells nothing (client left, or a later policy refused it) frees the slot for the next one', async () => {
  const { p, d, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 0.001 });
  await run(p, MODEL_500, 2);
  assert.equal(gauge(), 1);
  d.manual.advance(1);
  assert.equal(exchange(p, ABORTED).kind, 'continue', 'probe 1: the client left');
  assert.equal(exchange(p, THROTTLED).kind, 'continue', 'probe 2: refused by the concurrency limit');
  assert.equal(gauge(), 0.5, 'still half-open');
  assert.equal(exchange(p, NOT_FOUND).kind, 'continue', 'probe 3: the model answered (a 404 is an answer)');
  assert.equal(gauge(), 0);
});

test('requests in flight when the breaker opened do not close or re-open it when they end', async () => {
  const { p, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  const inFlight = [verdict(p), verdict(p), verdict(p)];
  await run(p, MODEL_500, 2);
  assert.equal(gauge(), 1);
  for (const v of inFlight) if (v.kind === 'continue') v.onDone?.(OK);
  assert.equal(gauge(), 1, 'still open: only a probe closes it');
});

test('closing empties the window: failures from before the outage do not trip it again', async () => {
  const { p, d } = breaker({ error_threshold_percent: 50, volume_threshold: 4, window_s: 60, reset_timeout_s: 5 });
  await run(p, MODEL_500, 4);
  d.manual.advance(5_000);
  assert.equal(exchange(p, OK).kind, 'continue');
  assert.equal(isOpen(p), false, 'closed');
  await run(p, MODEL_500, 3);
  assert.equal(isOpen(p), false, '3 requests since the close: under the volume threshold');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true);
});

// ---- logs and gauge -----------------------------------------------------------------------

test('one warn line on open (rate, window), one info on a failed probe, one info on close', async () => {
  const { p, d } = breaker({ error_threshold_percent: 50, volume_threshold: 4, window_s: 10, reset_timeout_s: 30 });
  await run(p, OK, 2);
  await run(p, MODEL_500, 2);
  for (let i = 0; i < 5; i++) verdict(p);
  assert.deepEqual(d.lines, [{
    level: 'warn',
    msg: 'circuit breaker opened',
    obj: { endpoint: 'cars', deployment: 'blue', error_percent: 50, failures: 2, requests: 4, window_s: 10, reset_timeout_s: 30 },
  }]);
  d.manual.advance(30_000);
  exchange(p, MODEL_500);
  assert.equal(d.lines.length, 2);
  assert.deepEqual(d.lines[1], {
    level: 'info',
    msg: 'circuit breaker probe failed; staying open',
    obj: { endpoint: 'cars', deployment: 'blue', status: 500, retry_in_s: 30 },
  });
  d.manual.advance(30_000);
  exchange(p, OK);
  assert.deepEqual(d.lines[2], { level: 'info', msg: 'circuit breaker closed', obj: { endpoint: 'cars', deployment: 'blue', open_s: 60 } });
  assert.equal(d.lines.length, 3);
});

// ---- reloads and disposal ------------------------------------------------------------------

test('a reload with the same settings keeps the breaker (open stays open); changed settings start a fresh one', async () => {
  const d = deps();
  const cb = { volume_threshold: 2, reset_timeout_s: 30 };
  let asked = d.state.begin();
  const first = circuitBreakerFactory.create(scope(cb), d);
  d.state.retain(asked);
  assert.ok(first);
  await run(first, MODEL_500, 2);
  assert.equal(isOpen(first), true);

  // Same settings, written in another order: the same breaker.
  asked = d.state.begin();
  const same = circuitBreakerFactory.create(scope({ reset_timeout_s: 30, volume_threshold: 2 }), d);
  d.state.retain(asked);
  assert.equal(same, first);
  assert.equal(d.gauges.breakers.get('cars/blue')?.(), 1, 'the gauge still reads the open breaker');

  asked = d.state.begin();
  const changed = circuitBreakerFactory.create(scope({ volume_threshold: 3, reset_timeout_s: 30 }), d);
  d.state.retain(asked);
  assert.ok(changed);
  assert.notEqual(changed, first);
  assert.equal(isOpen(changed), false, 'a fresh breaker starts closed');
  assert.equal(d.gauges.breakers.get('cars/blue')?.(), 0, 'the gauge reads the new breaker');
  assert.equal(d.state.size, 1, 'the old breaker was dropped');
  // The dropped one is shut down: it neither refuses nor learns any more.
  assert.equal(isOpen(first), false);
  await run(first, MODEL_500, 10);
  assert.equal(isOpen(first), false);
});

test('each deployment has its own breaker', async () => {
  const d = deps();
  const blue = circuitBreakerFactory.create(scope({ volume_threshold: 2 }, 'blue'), d);
  const green = circuitBreakerFactory.create(scope({ volume_threshold: 2 }, 'green'), d);
  assert.ok(blue && green);
  await run(blue, MODEL_500, 2);
  assert.equal(isOpen(blue), true);
  assert.equal(isOpen(green), false);
  assert.equal(d.gauges.breakers.get('cars/blue')?.(), 1);
  assert.equal(d.gauges.breakers.get('cars/green')?.(), 0);
});

test('no timer keeps the process alive, closed or open (opossum\'s reset timer is unref\'d and never due)', async () => {
  // getActiveResourcesInfo lists the timers that hold the event loop open (ref'd ones).
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
  const before = timers();
  const d = deps();
  const a = breaker({ volume_threshold: 2, reset_timeout_s: 1 }, d);
  await run(a.p, OK, 50);
  assert.equal(timers(), before, 'closed: no snapshot interval, no call timeout, no rotation interval');
  await run(a.p, MODEL_500, 50);
  assert.equal(isOpen(a.p), true);
  assert.equal(timers(), before, 'open: nothing holds the process');
  d.manual.advance(1_000);
  exchange(a.p, OK);
  assert.equal(isOpen(a.p), false, 'half-open and closed on the injected clock alone');
  (a.p as Policy & { dispose(): void }).dispose();
  assert.equal(timers(), before);
});

test('a wall clock stepped back neither stretches the wait past reset_timeout_s nor stops the window sliding', async () => {
  const { p, d } = breaker({ volume_threshold: 4, window_s: 10, reset_timeout_s: 30 });
  await run(p, MODEL_500, 3);
  d.manual.advance(-3_600_000);
  await run(p, OK, 1);
  d.manual.advance(10_000);
  await run(p, MODEL_500, 3);
  assert.equal(isOpen(p), false, 'what came before slid out 10 s after the step back');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true);
  d.manual.advance(-3_600_000);
  assert.equal(refusedFor(verdict(p)), '30', 'not an hour and a half');
  d.manual.advance(30_000);
  assert.equal(verdict(p).kind, 'continue', 'the probe, reset_timeout_s after the step back');
});
