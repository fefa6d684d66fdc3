import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Gcra, type Cell } from '../../../../policies/rate-limit/gcra.ts';

test('GCRA admits like a token bucket: burst at once, then one per interval', () => {
  const g = new Gcra(10, 3);
  const cell: Cell = { tat: 0 };
  assert.deepEqual([g.take(cell, 0), g.take(cell, 0), g.take(cell, 0), g.take(cell, 0)], [true, true, true, false]);
  assert.equal(g.nextMs, 100, 'refused: the next token is 100 ms away');
  assert.equal(g.resetMs, 300, 'and the bucket is full 300 ms from now');
  assert.equal(g.take(cell, 99), false);
  assert.equal(g.take(cell, 100), true);
  assert.equal(g.remaining, 0);
  assert.equal(g.nextMs, 100);
});

test('the figures after an admission: tokens left, until the next admission, until full', () => {
  const g = new Gcra(2, 4);
  const cell: Cell = { tat: 0 };
  assert.equal(g.take(cell, 0), true);
  assert.equal(g.remaining, 3);
  assert.equal(g.nextMs, 0, 'more tokens left: the next request is admitted now');
  assert.equal(g.resetMs, 500);
  g.take(cell, 0);
  g.take(cell, 0);
  g.take(cell, 0);
  assert.equal(g.remaining, 0);
  assert.equal(g.nextMs, 500);
  assert.equal(g.resetMs, 2000);
});

test('a fractional share of a bucket (a limit divided among processes) still admits at least one', () => {
  const g = new Gcra(1 / 3, 1 / 3);
  const cell: Cell = { tat: 0 };
  assert.equal(g.burst, 1);
  assert.equal(g.take(cell, 0), true);
  assert.equal(g.take(cell, 2999), false);
  assert.equal(g.take(cell, 3000), true);
});

test('reconfiguring keeps the bucket state (a re-divided fallback)', () => {
  const g = new Gcra(1, 2);
  const cell: Cell = { tat: 0 };
  g.take(cell, 0);
  g.take(cell, 0);
  g.configure(2, 6);
  assert.equal(g.take(cell, 0), true, '2 s of debt is 4 of the 6 tokens at the new rate');
  assert.equal(g.take(cell, 0), true);
  assert.equal(g.take(cell, 0), false);
  g.configure(2, 4);
  assert.equal(g.take(cell, 1000), false, 'shrunk: 2 s of debt left is the whole bucket');
});
