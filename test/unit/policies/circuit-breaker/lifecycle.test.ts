import assert from 'node:assert/strict';
import { test } from 'node:test';
import { circuitBreakerFactory } from '../../../../policies/circuit-breaker/circuit-breaker.ts';
import type { Policy } from '../../../../policies/policy.ts';
import { breaker, deps, exchange, isOpen, MODEL_500, OK, refusedFor, run, scope, verdict } from './fixtures.ts';

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
