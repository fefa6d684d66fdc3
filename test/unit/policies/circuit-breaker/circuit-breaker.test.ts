import assert from 'node:assert/strict';
import { test } from 'node:test';
import { circuitBreakerFactory } from '../../../../policies/circuit-breaker/circuit-breaker.ts';
import { DEPLOYMENT_POLICIES } from '../../../../policies/index.ts';
import { ABORTED, BAD_UPLOAD, breaker, CUT_MIDSTREAM, deps, isOpen, MODEL_500, NO_READY, NOT_FOUND, OK, QUEUE_TIMEOUT, REFUSED, run, scope, THROTTLED, TIMED_OUT, verdict } from './fixtures.ts';

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
