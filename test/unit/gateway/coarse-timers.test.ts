import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CoarseTimers, type Expiring } from '../../../gateway/coarse-timers.ts';

function clock(): { now: () => number; t: number } {
  const c = { t: 1000, now: () => c.t };
  return c;
}

test('a deadline fires once, on the first tick at or after it; a moved deadline waits', () => {
  const c = clock();
  const timers = new CoarseTimers(10, c.now);
  const fired: number[] = [];
  const e: Expiring = { deadline: timers.now + 50, expired: (now) => fired.push(now) };
  timers.add(e);
  c.t += 40; timers.tick();
  assert.deepEqual(fired, []);
  e.deadline = timers.now + 50; // re-armed by a chunk at t=1040
  c.t += 40; timers.tick();
  assert.deepEqual(fired, [], 'extended');
  c.t += 10; timers.tick();
  assert.deepEqual(fired, [1090]);
  c.t += 100; timers.tick();
  assert.deepEqual(fired, [1090], 'once');
  assert.equal(timers.size, 0);
});

test('removed before its deadline: never fires', () => {
  const c = clock();
  const timers = new CoarseTimers(10, c.now);
  let fired = false;
  const e: Expiring = { deadline: timers.now + 5, expired: () => { fired = true; } };
  timers.add(e);
  timers.remove(e);
  c.t += 100; timers.tick();
  assert.equal(fired, false);
});

test('the real ticker fires within a tick of the deadline and then stops', async () => {
  const timers = new CoarseTimers(10);
  const start = performance.now();
  const at = await new Promise<number>((resolve) => timers.add({ deadline: timers.now + 30, expired: (now) => resolve(now) }));
  assert.ok(at - start >= 20 && at - start < 200, `fired after ${at - start} ms`);
  assert.equal(timers.size, 0);
});
