import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sha256, digestString } from '../../../../config/key-digest.ts';
import { parseConfig } from '../../../../config/load.ts';
import { compose, digestKeys, keepRedacted, keyOverrides, mergePatch, redactChange } from '../../../../gateway/live-config/compose.ts';
import { EMPTY_DOC, rawDigest, type LiveDoc } from '../../../../gateway/live-config/live-doc.ts';

test('mergePatch follows RFC 7396 (its appendix A examples)', () => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) assert.deepEqual(mergePatch(target, patch), want, JSON.stringify([target, patch]));
});

test('digestKeys stores literal keys as digests and keeps references and digests as written', () => {
  const d = digestString(sha256('x'.repeat(20)));
  const out = digestKeys({ keys: { primary: 'literal-key-123456', secondary: '${CARS_KEY}' }, traffic: {} });
  assert.deepEqual(out.keys, { primary: digestString(sha256('literal-key-123456')), secondary: '${CARS_KEY}' });
  assert.deepEqual(digestKeys({ keys: { primary: d } }).keys, { primary: d });
  assert.deepEqual(digestKeys({ traffic: {} }), { traffic: {} });
});

test('keepRedacted keeps the current key for "<redacted>" and names a slot that has none', () => {
  const current = { keys: { primary: 'sha256:aa' } };
  assert.deepEqual(keepRedacted({ keys: { primary: '<redacted>', secondary: 'new-key-000000' } }, current).endpoint.keys, { primary: 'sha256:aa', secondary: 'new-key-000000' });
  assert.deepEqual(keepRedacted({ keys: { secondary: '<redacted>' } }, current).missing, ['secondary']);
  assert.deepEqual(redactChange({ keys: { primary: 'k', secondary: null }, traffic: { a: 1 } }), { keys: { primary: '<redacted>', secondary: null }, traffic: { a: 1 } });
});

test('compose lays overrides on the file while the file still says what it said; the file wins once it changes', () => {
  const cars = { traffic: { blue: 100 }, deployments: { blue: { instances: ['http://127.0.0.1:1'] } } };
  const file = { endpoints: { cars, dogs: cars } };
  const edited = { ...cars, roles: ['r'] };
  const doc: LiveDoc = {
    ...EMPTY_DOC,
    version: 2,
    endpoints: {
      cars: { config: edited, base: rawDigest(cars), at: '', by: '' },
      dogs: { config: null, base: rawDigest(cars), at: '', by: '' },
      emus: { config: cars, base: '', at: '', by: '' },
    },
  };
  const c = compose(file, doc);
  assert.deepEqual(c.raw.endpoints, { cars: edited, emus: cars });
  assert.deepEqual([...c.sources], [['cars', 'api'], ['emus', 'api']]);
  assert.deepEqual(c.superseded, []);
  // The file changes cars and adds emus: both overrides are superseded, dogs' deletion stands.
  const changed = compose({ endpoints: { cars: { ...cars, roles: ['x'] }, dogs: cars, emus: cars } }, doc);
  assert.deepEqual(changed.superseded, ['cars', 'emus']);
  assert.deepEqual(Object.keys(changed.raw.endpoints as object), ['cars', 'emus']);
});

test('a regenerated key applies while the configured key is the one it replaced', () => {
  const parsed = parseConfig({ endpoints: { cars: { keys: { primary: 'file-key-0000001' }, traffic: { blue: 100 }, deployments: { blue: { instances: ['http://127.0.0.1:1'] } } } } }, {});
  assert.ok(parsed.ok);
  const digest = digestString(sha256('new-key'));
  const doc: LiveDoc = {
    ...EMPTY_DOC,
    keys: {
      cars: { primary: { digest, replaces: digestString(sha256('file-key-0000001')), at: '', by: '' }, secondary: { digest, replaces: digestString(sha256('other')), at: '', by: '' } },
      gone: { primary: { digest, replaces: '', at: '', by: '' } },
    },
  };
  const k = keyOverrides(doc, parsed.config);
  assert.deepEqual([...k.active.keys()], ['cars/primary']);
  assert.deepEqual(k.superseded, ['cars/secondary', 'gone/primary']);
});
