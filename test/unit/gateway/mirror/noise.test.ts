import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { compareAnswers } from '../../../../gateway/mirror/compare.ts';
import { NoiseModel, cancelNoise } from '../../../../gateway/mirror/noise.ts';
import type { CapturedAnswer } from '../../../../gateway/mirror/types.ts';

const TOL = 1e-6;

function json(v: unknown, status = 200): CapturedAnswer {
  return { status, contentType: 'application/json', body: Buffer.from(JSON.stringify(v)), latencyMs: 1 };
}
const failed: CapturedAnswer = { status: 0, contentType: undefined, body: undefined, latencyMs: 1, failure: 'error' };

/** A live model: deterministic predictions, a random `id` and a timestamp in every answer. */
let clock = 1_700_000_000_000;
function liveModel(input: number, label = input % 2 ? 'cat' : 'dog'): CapturedAnswer {
  return json({ id: randomUUID(), created: clock++, predictions: [{ label, score: 0.25 + input / 1000 }, { label: 'other', score: 0.1 }] });
}

test('a random id and a timestamp are learned as noisy; a shadow differing only there agrees, a real difference still disagrees', () => {
  const noise = new NoiseModel();
  for (let i = 0; i < 20; i++) assert.equal(noise.learn(liveModel(i), liveModel(i), TOL), true);
  assert.equal(noise.pairs, 20);
  assert.ok(noise.isNoisy('$.id'));
  assert.ok(noise.isNoisy('$.created'));
  assert.ok(!noise.isNoisy('$.predictions[0].label'));
  assert.ok(!noise.isNoisy('$.predictions[*].score'));
  assert.deepEqual(noise.noisyFields(), [{ path: '$.created', count: 20, rate: 1 }, { path: '$.id', count: 20, rate: 1 }]);

  // Without noise cancellation the same shadow answer disagrees.
  const same = compareAnswers(liveModel(7), liveModel(7), { numberTolerance: TOL });
  assert.equal(same.outcome, 'disagree');
  assert.deepEqual(same.diffs.map((d) => d.path), ['$.id', '$.created']);
  const v = cancelNoise(same, noise);
  assert.equal(v.outcome, 'agree');
  assert.equal(v.noiseCancelled, true);
  assert.deepEqual(v.noisy.map((d) => d.path), ['$.id', '$.created']);
  assert.deepEqual(v.real, []);
  assert.equal(cancelNoise(same, undefined).outcome, 'disagree');

  const wrong = compareAnswers(liveModel(7), liveModel(7, 'cow'), { numberTolerance: TOL });
  const w = cancelNoise(wrong, noise);
  assert.equal(w.outcome, 'disagree');
  assert.equal(w.noiseCancelled, false);
  assert.deepEqual(w.real.map((d) => d.path), ['$.predictions[0].label']);
});

test('a field is noisy at ≥ 1% of usable pairs (configurable), and the rate follows more pairs', () => {
  const noise = new NoiseModel();
  const pair = (differs: boolean): void => {
    noise.learn(json({ a: 1, b: 2 }), json({ a: 1, b: differs ? 3 : 2 }), TOL);
  };
  pair(true);
  assert.ok(noise.isNoisy('$.b'), 'seen once in one pair: 100%');
  for (let i = 0; i < 199; i++) pair(false);
  assert.equal(noise.rate('$.b'), 1 / 200);
  assert.ok(!noise.isNoisy('$.b'), '1 in 200 is under 1%');
  assert.deepEqual(noise.noisyFields(), []);
  pair(true);
  assert.ok(!noise.isNoisy('$.b'), '2 in 201 is under 1%');
  pair(true);
  assert.ok(noise.isNoisy('$.b'), '3 in 202 is over 1%');
  assert.ok(!noise.isNoisy('$.a'));

  const strict = new NoiseModel({ minRate: 0.5 });
  strict.learn(json({ b: 1 }), json({ b: 2 }), TOL);
  strict.learn(json({ b: 1 }), json({ b: 1 }), TOL);
  assert.ok(strict.isNoisy('$.b'));
  strict.learn(json({ b: 1 }), json({ b: 1 }), TOL);
  assert.ok(!strict.isNoisy('$.b'));
});

test('array elements aggregate, and a noisy field makes the fields inside it noisy', () => {
  const noise = new NoiseModel();
  noise.learn(json({ items: [{ id: 1, v: 1 }, { id: 2, v: 1 }], meta: { ts: 1 } }), json({ items: [{ id: 5, v: 1 }, { id: 6, v: 1 }], meta: null }), TOL);
  assert.ok(noise.isNoisy('$.items[9].id'));
  assert.ok(noise.isNoisy('$.items[*].id'));
  assert.ok(!noise.isNoisy('$.items[0].v'));
  assert.ok(noise.isNoisy('$.meta.ts'), '$.meta differed wholesale');
  assert.ok(!noise.isNoisy('$.metadata'), 'a prefix of the name is not an ancestor');
  assert.equal(noise.noisyFields().length, 2);
});

test('numbers within the tolerance are not noise', () => {
  const noise = new NoiseModel();
  noise.learn(json({ s: 0.5 }), json({ s: 0.5000001 }), TOL);
  assert.equal(noise.pairs, 1);
  assert.ok(!noise.isNoisy('$.s'));
  noise.learn(json({ s: 0.5 }), json({ s: 0.5000001 }), 0);
  assert.ok(noise.isNoisy('$.s'));
});

test('failed or status-mismatched live pairs are skipped, and status is never noise', () => {
  const noise = new NoiseModel();
  assert.equal(noise.learn(json({ a: 1 }), failed, TOL), false);
  assert.equal(noise.learn(json({ a: 1 }), json({ e: 'x' }, 503), TOL), false);
  assert.equal(noise.learn(json({ a: 1 }), { ...json({ a: 1 }), body: undefined }, TOL), false);
  assert.equal(noise.pairs, 0);
  assert.equal(noise.skippedPairs, 3);
  assert.ok(!noise.isNoisy('$status'));
  assert.ok(!noise.isNoisy('$.a'));
  const c = compareAnswers(json({ a: 1 }), json({ a: 1 }, 500), { numberTolerance: TOL });
  noise.learn(json({ a: 1 }), json({ a: 2 }), TOL);
  assert.equal(cancelNoise(c, noise).outcome, 'disagree');
});

test('a truncated comparison is never cancelled, even when every recorded field is noisy', () => {
  const noise = new NoiseModel();
  noise.learn(json({ a: 1 }), json({ a: 2 }), TOL);
  const c = { outcome: 'disagree' as const, diffs: [{ path: '$.a', live: '1', shadow: '2' }], truncated: true };
  assert.equal(cancelNoise(c, noise).outcome, 'disagree');
  assert.equal(cancelNoise({ ...c, truncated: false }, noise).outcome, 'agree');
});

test('tracked fields are bounded; fields past the bound are never noisy', () => {
  const noise = new NoiseModel({ maxPaths: 5 });
  const wide = (v: number): Record<string, number> => Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, v]));
  noise.learn(json(wide(1)), json(wide(2)), TOL);
  assert.equal(noise.noisyFields().length, 5);
  assert.equal(noise.untracked, 3);
  assert.ok(noise.isNoisy('$.k0'));
  assert.ok(!noise.isNoisy('$.k7'));
});
