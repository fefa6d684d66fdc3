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

test('array elements aggregate; a noisy field does not make the fields inside it noisy', () => {
  const noise = new NoiseModel();
  noise.learn(json({ items: [{ id: 1, v: 1 }, { id: 2, v: 1 }], meta: { ts: 1 } }), json({ items: [{ id: 5, v: 1 }, { id: 6, v: 1 }], meta: null }), TOL);
  assert.ok(noise.isNoisy('$.items[9].id'));
  assert.ok(noise.isNoisy('$.items[*].id'));
  assert.ok(!noise.isNoisy('$.items[0].v'));
  assert.ok(noise.isNoisy('$.meta'));
  assert.ok(!noise.isNoisy('$.meta.ts'), 'only the field itself counts');
  assert.ok(!noise.isNoisy('$.metadata'));
  assert.equal(noise.noisyFields().length, 2);
});

const cmp = (a: CapturedAnswer, b: CapturedAnswer) => cancelNoise(compareAnswers(a, b, { numberTolerance: TOL }), undefined);

test('array length noise is learned at `[#]` and covers no element: a wrong shadow still disagrees', () => {
  const noise = new NoiseModel();
  const top = (n: number, label = 'cat'): CapturedAnswer => json({ items: Array.from({ length: n }, (_, i) => ({ label: i === 0 ? label : `l${i}`, score: 1 / (i + 2) })) });
  for (let i = 0; i < 20; i++) assert.equal(noise.learn(top(3 + (i % 5)), top(3 + ((i + 2) % 5)), TOL), true);
  assert.deepEqual(noise.noisyFields().map((f) => f.path), ['$.items[#]']);
  assert.ok(!noise.isNoisy('$.items'));
  assert.ok(!noise.isNoisy('$.items[*].label'));
  assert.equal(cancelNoise(compareAnswers(top(5), top(3), { numberTolerance: TOL }), noise).outcome, 'agree');
  const wrong = cancelNoise(compareAnswers(top(5), top(1, 'garbage'), { numberTolerance: TOL }), noise);
  assert.equal(wrong.outcome, 'disagree');
  assert.deepEqual(wrong.real.map((d) => d.path), ['$.items[0].label']);
  assert.equal(cmp(top(5), top(3)).outcome, 'disagree');
});

test('an event stream whose event count varies in live: a shadow with one different event disagrees', () => {
  const sse = (...data: string[]): CapturedAnswer => ({ status: 200, contentType: 'text/event-stream', body: Buffer.from(data.map((d) => `data: ${d}\n\n`).join('')), latencyMs: 1 });
  const words = ['The', ' cat', ' sat', ' on', ' the', ' mat', '.'];
  const live = (n: number): CapturedAnswer => sse(...words.slice(0, n).map((w) => JSON.stringify({ choices: [{ delta: { content: w } }] })), '[DONE]');
  const noise = new NoiseModel();
  for (let i = 0; i < 20; i++) noise.learn(live(3 + (i % 5)), live(3 + ((i + 1) % 5)), TOL);
  assert.ok(noise.pairs > 0);
  assert.ok(!noise.isNoisy('$'));
  assert.ok(noise.isNoisy('$[#]'));
  const shadow = sse(JSON.stringify({ choices: [{ delta: { content: 'garbage' } }] }));
  for (let n = 3; n <= 7; n++) {
    const v = cancelNoise(compareAnswers(live(n), shadow, { numberTolerance: TOL }), noise);
    assert.equal(v.outcome, 'disagree', `live with ${n} events`);
  }
  // The elements were misaligned by the count, not noisy: a shadow whose events are all wrong
  // (as many as live's) still disagrees (a trial found `$[*]` learned, and such a shadow at 100%).
  assert.ok(!noise.isNoisy('$[*]'));
  const wrong = sse('42', '42', '42', '42', '42', '[DONE]');
  assert.equal(cancelNoise(compareAnswers(live(5), wrong, { numberTolerance: TOL }), noise).outcome, 'disagree');
});

test('live differing from itself over the whole body is never learned: non-JSON, invalid JSON, top-level value', () => {
  const noise = new NoiseModel();
  const text = (t: string, type = 'text/plain'): CapturedAnswer => ({ status: 200, contentType: type, body: Buffer.from(t), latencyMs: 1 });
  for (let i = 0; i < 10; i++) assert.equal(noise.learn(text(randomUUID()), text(randomUUID()), TOL), false);
  assert.equal(noise.learn(text(`{"a":${randomUUID()}`, 'application/json'), text('{"a":1', 'application/json'), TOL), false);
  assert.equal(noise.learn(json(0.25), json(0.75), TOL), false);
  assert.equal(noise.liveNondeterministic, 12);
  assert.equal(noise.pairs, 0);
  assert.equal(noise.skippedPairs, 0);
  assert.ok(!noise.isNoisy('$'));
  assert.equal(cancelNoise(compareAnswers(text('a'), text('garbage'), { numberTolerance: TOL }), noise).outcome, 'disagree');
  // With field-level pairs learned too, `$` still never is.
  noise.learn(json({ id: 1 }), json({ id: 2 }), TOL);
  assert.equal(noise.pairs, 1);
  assert.ok(!noise.isNoisy('$'));
  assert.equal(cancelNoise(compareAnswers(text('{"a":1}', 'application/json'), text('garbage', 'application/json'), { numberTolerance: TOL }), noise).outcome, 'disagree');
  assert.deepEqual(noise.noisyFields().map((f) => f.path), ['$.id']);
});

test('content-encoded (gzip) answers are never learned, and a gzip shadow is not compared', () => {
  const gz = (label: string): CapturedAnswer => ({ ...json({ label }), body: Buffer.from(`\x1f\x8b\x08${label}${randomUUID()}`), contentEncoding: 'gzip' });
  const noise = new NoiseModel();
  for (let i = 0; i < 5; i++) assert.equal(noise.learn(gz('cat'), gz('cat'), TOL), false);
  assert.equal(noise.pairs, 0);
  assert.equal(noise.skippedPairs, 5);
  const c = compareAnswers(gz('cat'), gz('dog'), { numberTolerance: TOL });
  assert.deepEqual(c, { outcome: 'not_compared', diffs: [], reason: 'encoded_body' });
  assert.equal(cancelNoise(c, noise).outcome, 'not_compared');
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
