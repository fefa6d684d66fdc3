import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_DIFFS, MAX_FIELD_DIFFS, VALUE_PREVIEW_CHARS, bodyKind, compareAnswers, numbersEqual, parseEventStream, preview,
} from '../../../../gateway/mirror/compare.ts';
import { MAX_PATH_CHARS, normalisePath, pathSegments, pathTag, readableKey } from '../../../../gateway/mirror/paths.ts';
import type { CapturedAnswer, Comparison } from '../../../../gateway/mirror/types.ts';

const tol = { numberTolerance: 1e-6 };

function answer(body: string | Buffer | undefined, contentType: string | undefined = 'application/json', status = 200, failure?: 'timeout' | 'error'): CapturedAnswer {
  return { status: failure ? 0 : status, contentType, body: typeof body === 'string' ? Buffer.from(body) : body, latencyMs: 1, failure };
}
const json = (v: unknown, status = 200): CapturedAnswer => answer(JSON.stringify(v), 'application/json', status);
const paths = (c: Comparison): string[] => c.diffs.map((d) => d.path);

test('equal JSON agrees', () => {
  const v = { predictions: [{ label: 'cat', score: 0.93 }], model: 'v1' };
  assert.deepEqual(compareAnswers(json(v), json(v), tol), { outcome: 'agree', diffs: [] });
});

test('key order and whitespace do not matter in JSON', () => {
  const live = answer('{"a": 1, "b": {"x": [1, 2], "y": null}}');
  const shadow = answer('{"b":{"y":null,"x":[1,2]},"a":1}');
  assert.equal(compareAnswers(live, shadow, tol).outcome, 'agree');
  // …but a real change in the same reordered body does.
  const changed = answer('{"b":{"y":null,"x":[1,3]},"a":1}');
  assert.deepEqual(paths(compareAnswers(live, changed, tol)), ['$.b.x[1]']);
});

test('numbers agree within the relative tolerance, not outside it', () => {
  assert.equal(compareAnswers(json({ s: 0.5 }), json({ s: 0.5000004 }), tol).outcome, 'agree');
  assert.equal(compareAnswers(json({ s: 1e9 + 0.5 }), json({ s: 1e9 + 900.5 }), tol).outcome, 'agree');
  assert.equal(compareAnswers(json({ s: 1 }), json({ s: 1.0000001 }), tol).outcome, 'agree');
  const far = compareAnswers(json({ s: 0.5 }), json({ s: 0.5000006 }), tol);
  assert.equal(far.outcome, 'disagree');
  assert.deepEqual(far.diffs, [{ path: '$.s', live: '0.5', shadow: '0.5000006' }]);
  // The tolerance is the caller's: a looser one accepts the same pair.
  assert.equal(compareAnswers(json({ s: 0.5 }), json({ s: 0.5000006 }), { numberTolerance: 1e-5 }).outcome, 'agree');
});

test('numbersEqual: relative, so zero equals only zero; tolerance 0 is exact; integers are exact', () => {
  assert.ok(numbersEqual(0, -0, 1e-6));
  assert.ok(numbersEqual(0, 0, 0));
  assert.ok(!numbersEqual(0, 1e-300, 1e-6));
  assert.ok(!numbersEqual(1, 1 + 1e-12, 0));
  assert.ok(numbersEqual(-100, -100.00001, 1e-6));
  assert.ok(!numbersEqual(-100, 100, 1));
  assert.ok(!numbersEqual(-100, 100, 2), 'two integers are exact');
  assert.ok(numbersEqual(-100.5, 100.5, 2));
  assert.ok(!numbersEqual(1_700_000_000_000, 1_700_000_000_001, 1e-6), 'epoch-ms timestamps are exact');
  assert.ok(numbersEqual(2 ** 60, 2 ** 60 + 4096, 1e-6), 'beyond safe integers the tolerance applies');
});

test('different values, types, missing keys and array lengths disagree at the right paths', () => {
  const live = { predictions: [{ label: 'cat', score: 0.9 }, { label: 'dog', score: 0.1 }], meta: { v: 1, only_live: true }, tags: ['a', 'b'] };
  const shadow = { predictions: [{ label: 'cat', score: '0.9' }, { label: 'cow', score: 0.1 }], meta: { v: 1, only_shadow: null }, tags: ['a', 'b', 'c'] };
  const c = compareAnswers(json(live), json(shadow), tol);
  assert.equal(c.outcome, 'disagree');
  assert.deepEqual(c.diffs, [
    { path: '$.predictions[0].score', live: '0.9', shadow: '"0.9"' },
    { path: '$.predictions[1].label', live: '"dog"', shadow: '"cow"' },
    { path: '$.meta.only_live', live: 'true', shadow: '' },
    { path: '$.meta.only_shadow', live: '', shadow: 'null' },
    { path: '$.tags[#]', live: '2', shadow: '3' },
  ]);
});

test('array length difference is one diff at the array length `[#]`, and the common prefix is still compared', () => {
  const c = compareAnswers(json({ xs: [1, 2, 3] }), json({ xs: [1, 5] }), tol);
  assert.deepEqual(c.diffs, [{ path: '$.xs[#]', live: '3', shadow: '2' }, { path: '$.xs[1]', live: '2', shadow: '5' }]);
  assert.deepEqual(paths(compareAnswers(json([1]), json([1, 2]), tol)), ['$[#]']);
  assert.equal(normalisePath('$.xs[#]'), '$.xs[#]');
  assert.deepEqual(pathSegments('$.xs[3][#]'), ['$', '.xs', '[3]', '[#]']);
});

test('a top-level difference in type or value is at $', () => {
  assert.deepEqual(paths(compareAnswers(json([1]), json({ a: 1 }), tol)), ['$']);
  assert.deepEqual(compareAnswers(json(1), json(2), tol).diffs, [{ path: '$', live: '1', shadow: '2' }]);
});

test('field-name keys that are not identifiers are quoted in paths; other keys are a length and a tag', () => {
  const c = compareAnswers(json({ 'content-type': 'a', 'x.y': 1, 'q"[1]': 2, 0: 1 }), json({ 'content-type': 'b', 'x.y': 2, 'q"[1]': 3, 0: 2 }), tol);
  assert.deepEqual(paths(c), ['$["0"]', '$["content-type"]', '$["x.y"]', `$["<key 5 chars #${pathTag('q"[1]')}>"]`]);
});

test('readableKey: field names are shown, secret-looking keys are not', () => {
  for (const k of ['predictions', 'top_k', 'model_version', 'label', 'score', 'x.y', 'content-type', '_id', 'v2', 'layer_12', 'float32_values', '0', '123456', 'a'.repeat(32)]) {
    assert.ok(readableKey(k), k);
  }
  for (const k of ['sk-live-KEYSECRET999', 'KEYSECRET999', 'a1b2c3d4', 'user_5551234', 'jane@example.com', 'two words', '', '1234567', '9x', '$ref', 'a'.repeat(33), 'ключ', 'q"[1]']) {
    assert.ok(!readableKey(k), k);
  }
});

test('a secret-looking key never appears in a path; equal keys get equal tags', () => {
  const key = 'sk-live-KEYSECRET999';
  const c = compareAnswers(json({ [key]: 1, predictions: [{ label: 'a', top_k: 1, model_version: 'x' }] }), json({ [key]: 2, predictions: [{ label: 'b', top_k: 2, model_version: 'y' }] }), tol);
  const ps = paths(c);
  assert.ok(!JSON.stringify(c.diffs).includes('KEYSECRET'), JSON.stringify(c.diffs));
  assert.match(ps[0]!, /^\$\["<key 20 chars #[0-9a-f]{8}>"\]$/);
  assert.deepEqual(ps.slice(1), ['$.predictions[0].label', '$.predictions[0].top_k', '$.predictions[0].model_version']);
  const again = compareAnswers(json({ [key]: 3 }), json({ [key]: 4 }), tol);
  assert.equal(again.diffs[0]!.path, ps[0]);
  assert.notEqual(compareAnswers(json({ 'sk-live-KEYSECRET998': 3 }), json({ 'sk-live-KEYSECRET998': 4 }), tol).diffs[0]!.path, ps[0]);
});

test('a huge key becomes a short segment; every path is at most MAX_PATH_CHARS', () => {
  const huge = 'k'.repeat(400_000);
  const c = compareAnswers(json({ [huge]: { a: 1 } }), json({ [huge]: { a: 2 } }), tol);
  assert.equal(c.diffs[0]!.path, `$["<key 400000 chars #${pathTag(huge)}>"].a`);
  // Many nested mid-size keys: the path is cut at a segment boundary and tagged.
  const nest = (leaf: number): unknown => {
    let v: unknown = leaf;
    for (let i = 0; i < 100; i++) v = { [`field_${i}`]: v };
    return v;
  };
  const deep = compareAnswers(json(nest(1)), json(nest(2)), tol).diffs[0]!.path;
  assert.ok(deep.length <= MAX_PATH_CHARS, String(deep.length));
  assert.match(deep, /^\$\.field_99\.field_98.*\.field_\d+…#[0-9a-f]{8}$/);
  assert.equal(normalisePath(deep), deep);
  // Same field under other array indices: cut the same way, so counted as one field.
  const arr = (v: number, n: number): unknown => ({ xs: Array.from({ length: n }, () => nest(v)) });
  const a = compareAnswers(json(arr(1, 1)), json(arr(2, 1)), tol).diffs[0]!.path;
  const b = compareAnswers(json(arr(1, 12)), json(arr(2, 12)), tol).diffs.at(-1)!.path;
  assert.notEqual(a.length, 0);
  assert.equal(normalisePath(a), normalisePath(b));
});

test('invalid JSON on one side disagrees at $; both invalid and different also at $', () => {
  const c = compareAnswers(json({ a: 1 }), answer('{"a":1'), tol);
  assert.equal(c.outcome, 'disagree');
  assert.deepEqual(c.diffs, [{ path: '$', live: '{"a":1}', shadow: '"{\\"a\\":1"' }]);
  assert.deepEqual(paths(compareAnswers(answer('nope'), answer('nah'), tol)), ['$']);
  // Byte-identical invalid JSON agrees (bytes first).
  assert.equal(compareAnswers(answer('nope'), answer('nope'), tol).outcome, 'agree');
});

test('+json content types are JSON; a JSON body under another type is compared as bytes', () => {
  assert.equal(bodyKind('application/problem+json'), 'json');
  assert.equal(bodyKind('text/event-stream'), 'event-stream');
  assert.equal(bodyKind('text/plain'), 'other');
  assert.equal(bodyKind(undefined), 'other');
  const a = answer('{"a":1,"b":2}', 'application/problem+json');
  const b = answer('{"b":2,"a":1}', 'application/problem+json');
  assert.equal(compareAnswers(a, b, tol).outcome, 'agree');
  const pa = answer('{"a":1,"b":2}', 'text/plain');
  const pb = answer('{"b":2,"a":1}', 'text/plain');
  assert.deepEqual(paths(compareAnswers(pa, pb, tol)), ['$']);
});

test('non-JSON bodies are compared byte for byte', () => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2]);
  assert.equal(compareAnswers(answer(png, 'image/png'), answer(Buffer.from(png), 'image/png'), tol).outcome, 'agree');
  const other = Buffer.from(png);
  other[6] = 3;
  const c = compareAnswers(answer(png, 'image/png'), answer(other, 'image/png'), tol);
  assert.equal(c.outcome, 'disagree');
  assert.deepEqual(paths(c), ['$']);
  assert.equal(compareAnswers(answer('hello', 'text/plain'), answer('hello ', 'text/plain'), tol).outcome, 'disagree');
});

test('a different kind of body disagrees at $content_type', () => {
  const c = compareAnswers(json({ a: 1 }), answer('a=1', 'text/plain'), tol);
  assert.deepEqual(c.diffs, [{ path: '$content_type', live: '"application/json"', shadow: '"text/plain"' }]);
  const untyped: CapturedAnswer = { ...answer('{"a":2}'), contentType: undefined };
  assert.deepEqual(compareAnswers(json({ a: 1 }), untyped, tol).diffs, [{ path: '$content_type', live: '"application/json"', shadow: '' }]);
});

test('a body over the cap (or incomplete) is not compared, with the side as reason', () => {
  assert.deepEqual(compareAnswers(json({ a: 1 }), answer(undefined), tol), { outcome: 'not_compared', diffs: [], reason: 'shadow_body_not_captured' });
  assert.deepEqual(compareAnswers(answer(undefined), json({ a: 1 }), tol), { outcome: 'not_compared', diffs: [], reason: 'live_body_not_captured' });
});

test('a content-encoded answer (either side, anything but identity) is not compared: encoded_body', () => {
  const gz = (label: string, enc = 'gzip'): CapturedAnswer => ({ ...json({ label }), body: Buffer.from(`\x1f\x8b${label}`), contentEncoding: enc });
  const enc = { outcome: 'not_compared', diffs: [], reason: 'encoded_body' };
  assert.deepEqual(compareAnswers(gz('cat'), gz('dog'), tol), enc);
  assert.deepEqual(compareAnswers(gz('cat'), gz('cat'), tol), enc);
  assert.deepEqual(compareAnswers(json({ label: 'cat' }), gz('cat', 'BR'), tol), enc);
  assert.deepEqual(compareAnswers(gz('cat'), json({ label: 'cat' }), tol), enc);
  assert.equal(compareAnswers({ ...json({ label: 'cat' }), contentEncoding: 'identity' }, { ...json({ label: 'cat' }), contentEncoding: '' }, tol).outcome, 'agree');
  // A status class mismatch is still a disagreement.
  assert.equal(compareAnswers(gz('cat'), { ...gz('cat'), status: 503 }, tol).outcome, 'disagree');
});

test('shadow timeout and error; a failed live is not compared', () => {
  assert.equal(compareAnswers(json({ a: 1 }), answer(undefined, undefined, 0, 'timeout'), tol).outcome, 'timeout');
  assert.equal(compareAnswers(json({ a: 1 }), answer(undefined, undefined, 0, 'error'), tol).outcome, 'error');
  // Status 0 without a named failure is also an error.
  assert.equal(compareAnswers(json({ a: 1 }), answer(undefined, undefined, 0), tol).outcome, 'error');
  // The shadow's own failure is counted even when live failed too.
  assert.equal(compareAnswers(answer(undefined, undefined, 0, 'error'), answer(undefined, undefined, 0, 'timeout'), tol).outcome, 'timeout');
  assert.deepEqual(compareAnswers(answer(undefined, undefined, 0, 'timeout'), json({ a: 1 }), tol), { outcome: 'not_compared', diffs: [], reason: 'live_failed' });
});

test('status class mismatch disagrees at $status, even without bodies; same class compares bodies', () => {
  const c = compareAnswers(json({ a: 1 }), json({ error: 'boom' }, 503), tol);
  assert.deepEqual(c, { outcome: 'disagree', diffs: [{ path: '$status', live: '200', shadow: '503' }] });
  assert.equal(compareAnswers(json({ a: 1 }, 400), answer(undefined, 'application/json', 500), tol).outcome, 'disagree');
  assert.equal(compareAnswers(json({ a: 1 }, 200), json({ a: 1 }, 201), tol).outcome, 'agree');
  assert.equal(compareAnswers(json({ e: 'x' }, 404), json({ e: 'x' }, 400), tol).outcome, 'agree');
});

test('event streams compare their data payloads, as JSON when they parse', () => {
  const sse = (...events: string[]): CapturedAnswer => answer(events.map((e) => `${e}\n\n`).join(''), 'text/event-stream');
  const live = sse('id: 1\ndata: {"choices":[{"delta":{"content":"Hi"}}],"n":1}', ': keep-alive', 'data: [DONE]');
  const reordered = sse('id: 7\ndata: {"n":1,"choices":[{"delta":{"content":"Hi"}}]}', 'data: [DONE]');
  assert.equal(compareAnswers(live, reordered, tol).outcome, 'agree');
  const other = sse('data: {"choices":[{"delta":{"content":"Ho"}}],"n":1}', 'data: [DONE]');
  assert.deepEqual(paths(compareAnswers(live, other, tol)), ['$[0].choices[0].delta.content']);
  const notDone = sse('data: {"choices":[{"delta":{"content":"Hi"}}],"n":1}', 'data: [STOP]');
  assert.deepEqual(compareAnswers(live, notDone, tol).diffs, [{ path: '$[1]', live: '"[DONE]"', shadow: '"[STOP]"' }]);
  const longer = sse('data: {"choices":[{"delta":{"content":"Hi"}}],"n":1}', 'data: more', 'data: [DONE]');
  assert.deepEqual(compareAnswers(live, longer, tol).diffs[0], { path: '$[#]', live: '2', shadow: '3' });
  assert.deepEqual(paths(compareAnswers(live, longer, tol)), ['$[#]', '$[1]']);
});

test('parseEventStream: multi-line data, CRLF, comments, fields, a last event without its blank line', () => {
  assert.deepEqual(parseEventStream('data: a\r\ndata:b\r\n\r\n:c\nevent: x\nid: 2\nretry: 5\n\ndata\n\ndata: tail'), ['a\nb', '', 'tail']);
});

test('paths normalise array indices for counting, and only indices', () => {
  assert.equal(normalisePath('$.predictions[3].score'), '$.predictions[*].score');
  assert.equal(normalisePath('$[0][12].a'), '$[*][*].a');
  assert.equal(normalisePath('$["a[1]"][2]'), '$["a[1]"][*]');
  assert.equal(normalisePath('$.plain'), '$.plain');
  assert.equal(normalisePath('$status'), '$status');
  assert.deepEqual(pathSegments('$.a["b.c\\"]"][4].d'), ['$', '.a', '["b.c\\"]"]', '[4]', '.d']);
});

test('values are cut to a short JSON text that ends in … when cut', () => {
  const long = 'x'.repeat(500);
  const c = compareAnswers(json({ t: long, o: { k: long } }), json({ t: 'y', o: { k: 'y' } }), tol);
  for (const d of c.diffs) assert.ok(d.live.length <= VALUE_PREVIEW_CHARS, d.live);
  assert.equal(c.diffs[0]!.live, `"${'x'.repeat(VALUE_PREVIEW_CHARS - 2)}…`);
  assert.equal(preview({ a: [1, 2] }), '{"a":[1,2]}');
  assert.equal(preview(Array.from({ length: 10_000 }, (_, i) => i)).length, VALUE_PREVIEW_CHARS);
});

test('diffs are capped, yet every differing field is recorded once and the verdict stays right', () => {
  // 200 elements differ at `id` and, in the last one only, at `label`.
  const n = 200;
  const live = Array.from({ length: n }, (_, i) => ({ id: `a${i}`, label: 'x' }));
  const shadow = Array.from({ length: n }, (_, i) => ({ id: `b${i}`, label: i === n - 1 ? 'y' : 'x' }));
  const c = compareAnswers(json(live), json(shadow), tol);
  assert.equal(c.outcome, 'disagree');
  assert.equal(c.diffs.length, MAX_DIFFS + 1);
  assert.equal(c.truncated, undefined);
  assert.deepEqual(c.diffs.at(-1), { path: '$[199].label', live: '"x"', shadow: '"y"' });
  // More distinct fields than the hard cap: truncated.
  const wide = (p: string): Record<string, string> => Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, p]));
  const t = compareAnswers(json(wide('a')), json(wide('b')), tol);
  assert.equal(t.diffs.length, MAX_FIELD_DIFFS);
  assert.equal(t.truncated, true);
  assert.equal(t.outcome, 'disagree');
});

test('deep nesting does not overflow the stack', () => {
  const depth = 20_000;
  const live = '['.repeat(depth) + '1' + ']'.repeat(depth);
  const shadow = '['.repeat(depth) + '2' + ']'.repeat(depth);
  const c = compareAnswers(answer(live), answer(shadow), tol);
  assert.equal(c.outcome, 'disagree');
  const p = c.diffs[0]!.path;
  assert.ok(p.length <= MAX_PATH_CHARS);
  assert.equal(p, '$' + '[*]'.repeat((MAX_PATH_CHARS - 11) / 3) + `…#${pathTag('$' + '[*]'.repeat(depth))}`);
});
