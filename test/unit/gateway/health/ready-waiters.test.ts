import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoarseTimers } from '../../../../gateway/coarse-timers.ts';
import { HealthRegistry } from '../../../../gateway/health/health-registry.ts';
import { ReadyWaiters } from '../../../../gateway/health/ready-waiters.ts';
import { manualClock } from '../../../helpers/clock.ts';

function setup() {
  const clock = manualClock(0);
  const timers = new CoarseTimers(10, clock.now);
  const registry = new HealthRegistry();
  return { clock, timers, registry, waiters: new ReadyWaiters(registry, timers) };
}

test('a readiness change wakes every waiter once', () => {
  const { registry, waiters } = setup();
  const woken: boolean[] = [];
  waiters.wait('cars', 500, (t) => woken.push(t));
  waiters.wait('cars', 500, (t) => woken.push(t));
  const h = registry.get('http://10.0.0.1:5001');
  h.setReady(false);
  assert.deepEqual(woken, [false, false]);
  assert.equal(waiters.size, 0);
  assert.equal(waiters.waiting('cars'), 0, 'the count by endpoint follows');
  h.setReady(true);
  assert.deepEqual(woken, [false, false], 'a woken waiter is gone');
});

test('the deadline answers a waiter that nothing woke; a cancelled one hears nothing', () => {
  const { clock, timers, waiters } = setup();
  const woken: string[] = [];
  waiters.wait('cars', 500, (t) => woken.push(`a:${t}`));
  const cancel = waiters.wait('cars', 500, (t) => woken.push(`b:${t}`));
  assert.equal(waiters.waiting('cars'), 2);
  cancel();
  cancel();
  assert.equal(waiters.waiting('cars'), 1, 'a cancel counts once');
  clock.advance(499);
  timers.tick();
  assert.deepEqual(woken, []);
  clock.advance(1);
  timers.tick();
  assert.deepEqual(woken, ['a:true']);
  assert.equal(waiters.size, 0);
});
