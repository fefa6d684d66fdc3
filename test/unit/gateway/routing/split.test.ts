import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SmoothWeightedSplit } from '../../../../gateway/routing/split.ts';

function draw(s: SmoothWeightedSplit, n: number, usable?: (name: string) => boolean): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const name = s.next(usable) ?? 'none';
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

test('the split is exact over every window of sum(weights) picks', () => {
  const s = new SmoothWeightedSplit({ blue: 90, green: 10 });
  for (let w = 0; w < 3; w++) assert.deepEqual(draw(s, 100), { blue: 90, green: 10 });
});

test('an unusable deployment\'s share goes to the others in proportion to their weights', () => {
  const s = new SmoothWeightedSplit({ blue: 50, green: 30, red: 20 });
  assert.deepEqual(draw(s, 50, (n) => n !== 'blue'), { green: 30, red: 20 });
});

test('with nothing usable there is no pick; with zero weights neither', () => {
  assert.equal(new SmoothWeightedSplit({ blue: 50, green: 50 }).next(() => false), undefined);
  assert.equal(new SmoothWeightedSplit({ blue: 0 }).next(), undefined);
  assert.ok(new SmoothWeightedSplit({ blue: 0 }).empty);
});
