import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RateLimitFields, wholeSeconds } from '../../../../policies/rate-limit/headers.ts';

test('delay-seconds: whole seconds rounded up, never 0', () => {
  assert.deepEqual([0, 1, 999, 1000, 1001, 59_999].map(wholeSeconds), [1, 1, 1, 1, 2, 60]);
});

test('RateLimit-Policy: the bucket as q requests per w seconds (draft -11, an sf-string name)', () => {
  assert.equal(new RateLimitFields('endpoint', 500, 1000).policy, '"endpoint";q=1000;w=2');
  assert.equal(new RateLimitFields('caller', 3, 5).policy, '"caller";q=5;w=2', 'w rounds up: q/w never overstates the rate');
  assert.equal(new RateLimitFields('endpoint', 0.01, 1).policy, '"endpoint";q=1;w=100');
});

test('RateLimit: r capped at q; t until full, or until the next admission when r is 0', () => {
  const f = new RateLimitFields('endpoint', 10, 20);
  assert.equal(f.current(5, 0, 1500), '"endpoint";r=5;t=2');
  assert.equal(f.current(5, 0, 1500), '"endpoint";r=5;t=2', 'the same value again (from the cache)');
  assert.equal(f.current(40, 0, 100), '"endpoint";r=20;t=1', 'an estimate over workers never exceeds the quota');
  assert.equal(f.current(0, 100, 2000), '"endpoint";r=0;t=1');
  assert.equal(f.empty(7), '"endpoint";r=0;t=7');
  assert.equal(f.empty(7200), '"endpoint";r=0;t=7200');
  // A bucket too big to cache every value still answers.
  assert.equal(new RateLimitFields('caller', 1, 100_000).current(99_999, 0, 1000), '"caller";r=99999;t=1');
});
