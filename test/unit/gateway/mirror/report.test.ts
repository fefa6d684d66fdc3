import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { compareAnswers } from '../../../../gateway/mirror/compare.ts';
import { NoiseModel } from '../../../../gateway/mirror/noise.ts';
import { MAX_SIGNATURES, MirrorStats, disagreementLogLine, redactValue } from '../../../../gateway/mirror/report.ts';
import type { CapturedAnswer, Comparison } from '../../../../gateway/mirror/types.ts';

const KEY = Buffer.alloc(32, 7);
const T0 = Date.UTC(2025, 0, 2, 3, 4, 5);
const clock = (): number => T0;
const TOL = { numberTolerance: 1e-6 };

function json(v: unknown, status = 200): CapturedAnswer {
  return { status, contentType: 'application/json', body: Buffer.from(JSON.stringify(v)), latencyMs: 1 };
}
const cmp = (live: unknown, shadow: unknown): Comparison => compareAnswers(json(live), json(shadow), TOL);
const stats = (opts: ConstructorParameters<typeof MirrorStats>[2] = {}): MirrorStats =>
  new MirrorStats(clock, { endpoint: 'cars', deployment: 'green', percent: 10 }, { redactionKey: KEY, ...opts });

test('counts mirrored and skipped requests, outcomes, reasons, error rate and status classes', () => {
  const s = stats();
  s.skipped('skipped_budget');
  assert.equal(s.record({ outcome: 'skipped_budget' }, undefined), 'skipped_budget');
  s.skipped('skipped_body');
  assert.equal(s.record({ comparison: cmp({ a: 1 }, { a: 1 }), shadowStatus: 200 }, undefined), 'agree');
  assert.equal(s.record({ comparison: cmp({ a: 1 }, { a: 2 }), shadowStatus: 200 }, undefined), 'disagree');
  const timeout: CapturedAnswer = { status: 0, contentType: undefined, body: undefined, latencyMs: 5000, failure: 'timeout' };
  assert.equal(s.record({ comparison: compareAnswers(json(1), timeout, TOL), shadowStatus: 0 }, undefined), 'timeout');
  assert.equal(s.record({ comparison: compareAnswers(json(1), { ...json(1), body: undefined }, TOL), shadowStatus: 200 }, undefined), 'not_compared');
  assert.equal(s.record({ comparison: cmp(1, 1), shadowStatus: 503 }, undefined), 'agree');
  assert.equal(s.record({ outcome: 'error' }, undefined), 'error');
  const r = s.report();
  assert.equal(r.endpoint, 'cars');
  assert.equal(r.deployment, 'green');
  assert.equal(r.percent, 10);
  assert.equal(r.since, '2025-01-02T03:04:05.000Z');
  assert.equal(r.mirrored, 6);
  assert.deepEqual(r.skipped, { skipped_budget: 2, skipped_body: 1 });
  assert.deepEqual(r.outcomes, { agree: 2, disagree: 1, error: 1, timeout: 1, not_compared: 1 });
  assert.deepEqual(r.not_compared_reasons, { shadow_body_not_captured: 1 });
  assert.equal(r.compared, 3);
  assert.equal(r.agreement_rate, 0.6667);
  assert.equal(r.shadow_error_rate, 0.3333);
  assert.deepEqual(r.shadow_status, { '2xx': 3, none: 1, '5xx': 1 });
  assert.equal(r.noise_baseline, null);
  assert.equal(s.report({ percent: 20 }).percent, 20);
});

test('an empty report has null rates, not NaN', () => {
  const r = new MirrorStats(clock).report();
  assert.equal(r.agreement_rate, null);
  assert.equal(r.shadow_error_rate, null);
  assert.deepEqual(r.latency.live, { count: 0, p50_ms: null, p99_ms: null });
  assert.equal(r.deployment, null);
  assert.doesNotThrow(() => JSON.stringify(r));
});

test('agreement rate: noisy-only disagreements count as agreements, and are shown apart', () => {
  const noise = new NoiseModel();
  for (let i = 0; i < 5; i++) noise.learn(json({ id: `a${i}`, label: 'cat' }), json({ id: `b${i}`, label: 'cat' }), 1e-6);
  const s = stats();
  for (let i = 0; i < 6; i++) s.record({ comparison: cmp({ id: 'x', label: 'cat' }, { id: 'x', label: 'cat' }) }, noise);
  for (let i = 0; i < 2; i++) assert.equal(s.record({ comparison: cmp({ id: 'x', label: 'cat' }, { id: 'y', label: 'cat' }) }, noise), 'agree');
  for (let i = 0; i < 2; i++) assert.equal(s.record({ comparison: cmp({ id: 'x', label: 'cat' }, { id: 'y', label: 'dog' }) }, noise), 'disagree');
  const r = s.report();
  assert.deepEqual(r.outcomes, { agree: 8, disagree: 2, error: 0, timeout: 0, not_compared: 0 });
  assert.equal(r.noise_cancelled, 2);
  assert.equal(r.agreement_rate, 0.8);
  assert.equal(r.agreement_rate_raw, 0.6);
  assert.deepEqual(r.fields.map((f) => [f.path, f.count, f.rate, f.noisy, f.live_noise_rate]), [
    ['$.label', 2, 0.2, false, 0],
    ['$.id', 4, 0.4, true, 1],
  ]);
  assert.equal(r.not_rejudged, 0);
  assert.deepEqual(r.noise_baseline, { pairs: 5, skipped_pairs: 0, live_nondeterministic: 0, skipped_live_busy: 0, noisy_fields: [{ path: '$.id', rate: 1 }] });
  // Without the noise model the same requests all disagree.
  const raw = stats();
  for (let i = 0; i < 4; i++) raw.record({ comparison: cmp({ id: 'x' }, { id: 'y' }) }, undefined);
  assert.equal(raw.report().agreement_rate, 0);
});

test('top fields: real before noisy, by count, ties by path; array elements aggregate and count once per request; at most 10', () => {
  const s = stats();
  // $.p[*].score differs in 3 requests (several elements each), $.b in 2, $.a in 2, fields f0..f11 once.
  for (let i = 0; i < 3; i++) s.record({ comparison: cmp({ p: [{ score: 0.1 }, { score: 0.2 }] }, { p: [{ score: 0.3 }, { score: 0.4 }] }) }, undefined);
  for (let i = 0; i < 2; i++) s.record({ comparison: cmp({ b: 1, a: 1 }, { b: 2, a: 2 }) }, undefined);
  const many = (v: number): Record<string, number> => Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${String(i).padStart(2, '0')}`, v]));
  s.record({ comparison: cmp(many(1), many(2)) }, undefined);
  const r = s.report();
  assert.equal(r.compared, 6);
  assert.equal(r.fields.length, 10);
  assert.deepEqual(r.fields.slice(0, 4).map((f) => [f.path, f.count]), [['$.p[*].score', 3], ['$.a', 2], ['$.b', 2], ['$.f00', 1]]);
  assert.equal(r.fields[0]!.rate, 0.5);
  assert.deepEqual(r.fields[0]!.example, { path: '$.p[0].score', live: '0.1', shadow: '0.3' });
  assert.equal(r.fields[0]!.live_noise_rate, null);
});

test('redaction: no secret-looking or long string from an answer reaches the report', () => {
  const secret = 'sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c';
  const email = 'jane.doe@example.com';
  const long = 'lorem ipsum '.repeat(40);
  const s = stats();
  s.record({
    comparison: cmp(
      { token: secret, user: { email }, text: long, score: 0.93, card: 4111111111111111, ok: true, obj: { k: 'v' }, arr: [1, 2, 3] },
      { token: 'sk-live-0000', user: { email: 'john@example.com' }, text: 'short', score: 0.5, card: 4000000000000002, ok: false, obj: { k: 'w', j: 1 }, arr: [1] },
    ),
  }, undefined);
  const text = JSON.stringify(s.report());
  for (const leak of ['sk-live', '4f9a8b7c', 'jane', 'john', 'example.com', 'lorem', 'short', '4111111111111111', '4000000000000002', '"v"', '"w"']) {
    assert.ok(!text.includes(leak), `report leaks ${leak}`);
  }
  const ex = Object.fromEntries(s.report().fields.map((f) => [f.path, [f.example.live, f.example.shadow]]));
  assert.match(ex['$.token']![0]!, /^string\(40 chars, #[0-9a-f]{8}\)$/);
  assert.match(ex['$.token']![1]!, /^string\(12 chars, #[0-9a-f]{8}\)$/);
  assert.deepEqual(ex['$.text'], ['string(long)', 'string(5 chars, #' + redactValue('"short"', KEY).split('#')[1]!]);
  assert.deepEqual(ex['$.score'], ['0.93', '0.5']);
  assert.deepEqual(ex['$.card'], ['number(16 digits)', 'number(16 digits)']);
  assert.deepEqual(ex['$.ok'], ['true', 'false']);
  assert.deepEqual(ex['$.obj.k']?.map((v) => v.slice(0, 8)), ['string(1', 'string(1']);
  assert.deepEqual(ex['$.obj.j'], ['absent', '1']);
  assert.deepEqual(ex['$.arr[#]'], ['3', '1']);
});

test('early disagreements are judged again with the noise model at report time', () => {
  let t = 1_700_000_000_000;
  const answer = (label: string): CapturedAnswer => json({ id: randomUUID(), ts: t++, predictions: [{ label, score: 0.9 }] });
  const noise = new NoiseModel();
  const s = stats();
  // Compared before anything was learned: disagreements at the time (the metric's outcome).
  for (let i = 0; i < 10; i++) assert.equal(s.record({ comparison: compareAnswers(answer('cat'), answer('cat'), TOL) }, noise), 'disagree');
  let r = s.report();
  assert.equal(r.agreement_rate, 0);
  assert.deepEqual(r.noise_baseline?.noisy_fields, []);
  for (let i = 0; i < 10; i++) noise.learn(answer('cat'), answer('cat'), 1e-6);
  for (let i = 0; i < 10; i++) assert.equal(s.record({ comparison: compareAnswers(answer('cat'), answer('cat'), TOL) }, noise), 'agree');
  // A wrong label is a real disagreement, before and after.
  assert.equal(s.record({ comparison: compareAnswers(answer('cat'), answer('dog'), TOL) }, noise), 'disagree');
  r = s.report();
  assert.deepEqual(r.outcomes, { agree: 20, disagree: 1, error: 0, timeout: 0, not_compared: 0 });
  assert.equal(r.noise_cancelled, 20);
  assert.equal(r.agreement_rate, 0.9524);
  assert.equal(r.agreement_rate_raw, 0);
  assert.equal(r.not_rejudged, 0);
  // The identical shadow alone: agreement 1 once the baseline knows id and ts are noisy.
  const only = stats();
  for (let i = 0; i < 10; i++) only.record({ comparison: compareAnswers(answer('cat'), answer('cat'), TOL) }, undefined);
  only.record({ comparison: compareAnswers(answer('cat'), answer('cat'), TOL) }, noise);
  assert.equal(only.report().agreement_rate, 1);
  assert.equal(only.report().agreement_rate_raw, 0);
});

test('disagreements that cannot be re-judged stay disagreements: truncated, or past the signature bound', () => {
  const noise = new NoiseModel({ minRate: 0, maxPaths: 2 * MAX_SIGNATURES });
  noise.learn(json({ a: 1 }), json({ a: 2 }), 1e-6);
  const s = stats();
  s.record({ comparison: { outcome: 'disagree', diffs: [{ path: '$.a', live: '1', shadow: '2' }], truncated: true } }, noise);
  s.record({ outcome: 'disagree' }, noise);
  for (let i = 0; i < MAX_SIGNATURES + 5; i++) {
    s.record({ comparison: { outcome: 'disagree', diffs: [{ path: '$.a', live: '1', shadow: '2' }, { path: `$.k${i}`, live: '1', shadow: '2' }] } }, noise);
  }
  let r = s.report();
  assert.equal(r.not_rejudged, 7);
  assert.equal(r.outcomes.disagree, MAX_SIGNATURES + 7);
  // Later, every `$.kN` turns out noisy too: the tracked signatures agree, the rest do not.
  for (let i = 0; i < MAX_SIGNATURES + 5; i++) noise.learn(json({ a: 1, [`k${i}`]: 1 }), json({ a: 2, [`k${i}`]: 2 }), 1e-6);
  r = s.report();
  assert.equal(r.noise_cancelled, MAX_SIGNATURES);
  assert.deepEqual([r.outcomes.agree, r.outcomes.disagree], [MAX_SIGNATURES, 7]);
});

test('secret-looking and huge keys never reach the report or the log line; field names stay readable', () => {
  const secretKey = 'sk-live-KEYSECRET999';
  const huge = 'h'.repeat(400_000);
  const live = { [secretKey]: 1, [huge]: 1, predictions: [{ label: 'cat', top_k: 1 }], model_version: 'a' };
  const shadow = { [secretKey]: 2, [huge]: 2, predictions: [{ label: 'dog', top_k: 2 }], model_version: 'b' };
  const s = stats();
  s.record({ comparison: cmp(live, shadow) }, undefined);
  const report = JSON.stringify(s.report());
  const line = JSON.stringify(disagreementLogLine(cmp(live, shadow)));
  for (const text of [report, line]) {
    assert.ok(!text.includes('KEYSECRET'), text);
    assert.ok(!text.includes('hhhhhhhh'));
    for (const name of ['$.predictions[*].label', '$.predictions[*].top_k', '$.model_version']) assert.ok(text.includes(name), name);
    assert.match(text, /<key 20 chars #[0-9a-f]{8}>/);
    assert.match(text, /<key 400000 chars #[0-9a-f]{8}>/);
  }
  assert.ok(report.length < 4000, String(report.length));
  assert.ok(line.length < 1000, String(line.length));
});

test('not_compared reasons include encoded_body for a gzip answer', () => {
  const gz = (label: string): CapturedAnswer => ({ ...json({ label }), body: Buffer.from(`\x1f\x8b${label}`), contentEncoding: 'gzip' });
  const s = stats();
  assert.equal(s.record({ comparison: compareAnswers(gz('cat'), gz('dog'), TOL) }, undefined), 'not_compared');
  const r = s.report();
  assert.deepEqual(r.not_compared_reasons, { encoded_body: 1 });
  assert.equal(r.agreement_rate, null);
});

test('redactValue: tags are keyed (equal strings match within a key, not across keys); status and content type are kept', () => {
  const a = redactValue('"cat"', KEY);
  assert.equal(a, redactValue('"cat"', KEY));
  assert.notEqual(a, redactValue('"dog"', KEY));
  assert.notEqual(a, redactValue('"cat"', Buffer.alloc(32, 8)));
  assert.equal(redactValue('{"a":1,"b":[1]}', KEY), 'object(2 keys)');
  assert.equal(redactValue('[{"a":1', KEY), 'array(…)');
  assert.equal(redactValue('{"a":"xxxxxxxx…', KEY), 'object(…)');
  assert.equal(redactValue('null', KEY), 'null');
  assert.equal(redactValue('-999999', KEY), '-999999');
  assert.equal(redactValue('1000000', KEY), 'number(7 digits)');
  assert.equal(redactValue('503', KEY, '$status'), '503');
  assert.equal(redactValue('"application/json"', KEY, '$content_type'), '"application/json"');
  assert.match(redactValue('"Bearer abc/def"', KEY, '$content_type'), /^string\(/);
});

test('tracked fields are bounded: the rest count as other_fields', () => {
  const s = stats({ maxPaths: 5 });
  const wide = (v: number): Record<string, number> => Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, v]));
  s.record({ comparison: cmp(wide(1), wide(2)) }, undefined);
  s.record({ comparison: cmp(wide(1), wide(2)) }, undefined);
  const r = s.report();
  assert.deepEqual(r.fields.map((f) => [f.path, f.count]), [['$.k0', 2], ['$.k1', 2], ['$.k2', 2], ['$.k3', 2], ['$.k4', 2]]);
  assert.equal(r.other_fields, 6);
  // Default bound: 1000.
  const d = stats();
  for (let i = 0; i < 3; i++) {
    const big = (v: number): Record<string, number> => Object.fromEntries(Array.from({ length: 500 }, (_, j) => [`r${i}k${j}`, v]));
    // compareAnswers records at most 100 fields per comparison; build comparisons directly.
    const diffs = Object.keys(big(0)).map((k) => ({ path: `$.${k}`, live: '1', shadow: '2' }));
    d.record({ comparison: { outcome: 'disagree', diffs } }, undefined);
  }
  assert.equal(d.report().other_fields, 500);
});

test('latency percentiles of live and shadow, in ms', () => {
  const s = stats();
  for (let i = 1; i <= 1000; i++) {
    s.record({ comparison: cmp(1, 1), liveLatencyMs: i / 10, shadowLatencyMs: i }, undefined);
  }
  const { live, shadow } = s.report().latency;
  assert.equal(live.count, 1000);
  assert.equal(shadow.count, 1000);
  const near = (got: number | null, want: number): void => assert.ok(got !== null && Math.abs(got - want) <= want * 0.002, `${got} ≉ ${want}`);
  near(live.p50_ms, 50);
  near(live.p99_ms, 99);
  near(shadow.p50_ms, 500);
  near(shadow.p99_ms, 990);
});

test('disagreementLogLine: field paths only, normalised, at most 10, noisy ones apart', () => {
  const noise = new NoiseModel();
  noise.learn(json({ id: 1 }), json({ id: 2 }), 1e-6);
  const live = { id: 1, secret: 'sk-live-abc', items: [{ v: 1 }, { v: 2 }], ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, 'x'])) };
  const shadow = { id: 2, secret: 'sk-live-xyz', items: [{ v: 3 }, { v: 4 }], ...Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`f${i}`, 'y'])) };
  const line = disagreementLogLine(cmp(live, shadow), noise);
  assert.equal(line.outcome, 'disagree');
  assert.deepEqual(line.fields, ['$.secret', '$.items[*].v', '$.f0', '$.f1', '$.f2', '$.f3', '$.f4', '$.f5', '$.f6', '$.f7']);
  assert.deepEqual(line.noisy_fields, ['$.id']);
  assert.equal(line.more_fields, 4);
  assert.equal(line.truncated, false);
  assert.ok(!JSON.stringify(line).includes('sk-live'));
  assert.deepEqual(disagreementLogLine(cmp({ a: 1 }, { a: 1 })), { outcome: 'agree', fields: [], noisy_fields: [], more_fields: 0, truncated: false });
  assert.equal(disagreementLogLine({ outcome: 'not_compared', diffs: [], reason: 'live_failed' }).reason, 'live_failed');
});
