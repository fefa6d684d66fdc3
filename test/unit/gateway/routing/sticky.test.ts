import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { murmur3, STICKY_KEY_MAX, StickySplit } from '../../../../gateway/routing/sticky.ts';

// Issue 11, sticky split: weighted rendezvous hashing over MurmurHash3.

const N = 10_000;
/** Sequential ids: the structured keys a weak hash would cluster. */
const KEYS = Array.from({ length: N }, (_, i) => `user-${i}`);
const EMAILS = Array.from({ length: N }, (_, i) => `someone.${i}@example.com`);

function shares(weights: Record<string, number>, keys: readonly string[]): Record<string, number> {
  const s = new StickySplit(weights, 'x-user-id');
  const out: Record<string, number> = {};
  for (const k of keys) {
    const d = s.pick(k) ?? 'none';
    out[d] = (out[d] ?? 0) + 1;
  }
  for (const d of Object.keys(out)) out[d] = out[d]! / keys.length;
  return out;
}

/** How many keys change deployment between two weightings, by `from->to`. */
function moves(before: Record<string, number>, after: Record<string, number>, keys: readonly string[]): { moved: number; by: Record<string, number> } {
  const a = new StickySplit(before, 'x-user-id');
  const b = new StickySplit(after, 'x-user-id');
  const by: Record<string, number> = {};
  let moved = 0;
  for (const k of keys) {
    const x = a.pick(k);
    const y = b.pick(k);
    if (x === y) continue;
    moved++;
    by[`${x}->${y}`] = (by[`${x}->${y}`] ?? 0) + 1;
  }
  return { moved: moved / keys.length, by };
}

function assertShares(weights: Record<string, number>, keys: readonly string[], tolerance = 0.015): void {
  const got = shares(weights, keys);
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  for (const [d, w] of Object.entries(weights)) {
    assert.ok(Math.abs((got[d] ?? 0) - w / total) <= tolerance, `${d}: ${got[d]} for weight ${w}/${total} (${JSON.stringify(got)})`);
  }
}

/** MurmurHash3_x86_32 over bytes, as published (Appleby's reference), to pin ours against. */
function murmur3Bytes(b: Buffer, seed: number): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const mix = (k: number): number => Math.imul(((Math.imul(k, c1) << 15) | (Math.imul(k, c1) >>> 17)), c2);
  let h = seed | 0;
  let i = 0;
  for (; i + 4 <= b.length; i += 4) {
    h ^= mix(b.readUInt32LE(i));
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  let k = 0;
  const tail = b.length & 3;
  if (tail >= 3) k ^= b[i + 2]! << 16;
  if (tail >= 2) k ^= b[i + 1]! << 8;
  if (tail >= 1) h ^= mix(k ^ b[i]!);
  h ^= b.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

describe('the hash', () => {
  test('is MurmurHash3_x86_32 of the UTF-16LE bytes (the reference reproduces the published vectors)', () => {
    assert.equal(murmur3Bytes(Buffer.from(''), 0), 0);
    assert.equal(murmur3Bytes(Buffer.from(''), 1), 0x514e28b7);
    assert.equal(murmur3Bytes(Buffer.from('test'), 0), 0xba6bd213);
    assert.equal(murmur3Bytes(Buffer.from('Hello, world!'), 0), 0xc0363e43);
    for (const s of ['', 'a', 'ab', 'abc', 'user-12345', 'ünïcødé', '😀x', 'x'.repeat(301)]) {
      for (const seed of [0, 1, 0x5eed, -5]) assert.equal(murmur3(s, seed), murmur3Bytes(Buffer.from(s, 'utf16le'), seed), `${s} seed ${seed}`);
    }
  });

  test('assignments are pinned: changing the hash would move every caller on upgrade', () => {
    assert.equal(murmur3('user-1', 0), 0x90d68650);
    assert.equal(murmur3('alice@example.com', 0), 0x4ac15370);
    const s = new StickySplit({ blue: 50, green: 30, red: 20 }, 'x-user-id');
    const got = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'user-1', 'user-2'].map((k) => `${k}:${s.pick(k)}`).join(' ');
    assert.equal(got, 'alice:red bob:blue carol:red dave:blue erin:green frank:green user-1:green user-2:green');
  });
});

describe('StickySplit', () => {
  test('one caller, one deployment: every pick, every instance, whatever order the weights are written in', () => {
    const a = new StickySplit({ blue: 90, green: 10 }, 'x-user-id');
    const b = new StickySplit({ green: 10, blue: 90 }, 'x-user-id');
    for (const k of KEYS) {
      const d = a.pick(k);
      assert.ok(d === 'blue' || d === 'green');
      assert.equal(a.pick(k), d);
      assert.equal(b.pick(k), d, k);
    }
  });

  test('proportional over 10,000 callers (within 1.5 points): 90/10, 50/30/20 and 1/99', () => {
    for (const keys of [KEYS, EMAILS]) {
      assertShares({ blue: 90, green: 10 }, keys);
      assertShares({ a: 50, b: 30, c: 20 }, keys);
      assertShares({ a: 1, b: 99 }, keys, 0.005);
      assertShares({ a: 33, b: 33, c: 34 }, keys);
    }
  });

  test('90/10 → 80/20 moves about 10% of callers, every one from blue to green', () => {
    for (const keys of [KEYS, EMAILS]) {
      const { moved, by } = moves({ blue: 90, green: 10 }, { blue: 80, green: 20 }, keys);
      assert.ok(moved >= 0.09 && moved <= 0.11, `moved ${moved}`);
      assert.deepEqual(Object.keys(by), ['blue->green']);
    }
    // And back: the same callers return.
    const there = new StickySplit({ blue: 80, green: 20 }, 'x');
    const back = new StickySplit({ blue: 90, green: 10 }, 'x');
    const before = new StickySplit({ blue: 90, green: 10 }, 'x');
    for (const k of KEYS) if (there.pick(k) === 'green' && before.pick(k) === 'green') assert.equal(back.pick(k), 'green');
  });

  test('three deployments: weight moved from a to c moves callers only towards c or away from a, about the minimum', () => {
    const { moved, by } = moves({ a: 50, b: 30, c: 20 }, { a: 40, b: 30, c: 30 }, KEYS);
    // The minimum is 10%; rendezvous hashing moves a little more (some a → b, b → c).
    assert.ok(moved >= 0.09 && moved <= 0.14, `moved ${moved}`);
    for (const m of Object.keys(by)) assert.ok(m.endsWith('->c') || m.startsWith('a->'), m);
  });

  test('scaling every weight moves nobody; a new deployment takes its callers mostly from the one that gave up the weight', () => {
    assert.equal(moves({ blue: 90, green: 10 }, { blue: 45, green: 5 }, KEYS).moved, 0);
    const { moved, by } = moves({ blue: 90, green: 10 }, { blue: 80, green: 10, red: 10 }, KEYS);
    assert.ok(moved >= 0.09 && moved <= 0.12, `moved ${moved}`);
    assert.ok((by['blue->red'] ?? 0) / N >= 0.08, JSON.stringify(by));
    assert.equal(by['red->blue'], undefined);
  });

  test('a zero weight is never picked; all zero (or none) picks nothing', () => {
    const s = new StickySplit({ blue: 100, green: 0 }, 'x');
    for (const k of KEYS) assert.equal(s.pick(k), 'blue');
    assert.equal(s.empty, false);
    // Setting a deployment to 0 moves its callers only.
    const { by } = moves({ blue: 50, green: 50 }, { blue: 100, green: 0 }, KEYS);
    assert.deepEqual(Object.keys(by), ['green->blue']);
    for (const w of [{ blue: 0, green: 0 }, {}] as Record<string, number>[]) {
      const z = new StickySplit(w, 'x');
      assert.equal(z.empty, true);
      assert.equal(z.pick('user-1'), undefined);
    }
  });

  test('usable: a left-out deployment\'s callers go to their runner-up, in proportion to the rest; nobody else moves', () => {
    const s = new StickySplit({ a: 50, b: 30, c: 20 }, 'x');
    const notA = (n: string): boolean => n !== 'a';
    const to: Record<string, number> = {};
    let displaced = 0;
    for (const k of KEYS) {
      const home = s.pick(k)!;
      const fallback = s.pick(k, notA)!;
      assert.notEqual(fallback, 'a');
      assert.equal(s.pick(k, notA), fallback, 'the same runner-up every time');
      if (home !== 'a') {
        assert.equal(fallback, home, 'callers of b and c stay');
        continue;
      }
      displaced++;
      to[fallback] = (to[fallback] ?? 0) + 1;
    }
    assert.ok(Math.abs(to.b! / displaced - 0.6) <= 0.02, JSON.stringify(to));
    assert.ok(Math.abs(to.c! / displaced - 0.4) <= 0.02, JSON.stringify(to));
    assert.equal(s.pick('user-1', () => false), undefined);
    // Zero-weight deployments stay out even when usable.
    assert.equal(new StickySplit({ a: 100, b: 0 }, 'x').pick('user-1', (n) => n === 'b'), undefined);
  });

  test('only the first STICKY_KEY_MAX characters count', () => {
    const s = new StickySplit({ a: 50, b: 50 }, 'x');
    const prefix = 'p'.repeat(STICKY_KEY_MAX - 1);
    const differ = KEYS.slice(0, 200).filter((k) => s.pick(prefix + k) !== s.pick(prefix + k[0]));
    assert.deepEqual(differ, [], 'characters past the cap do not change the pick');
    assert.ok(KEYS.slice(0, 200).some((k) => s.pick(k) !== s.pick(KEYS[0]!)), 'characters within it do');
  });
});

describe('keyOf: the caller\'s key from the request headers', () => {
  const s = new StickySplit({ a: 50, b: 50 }, 'x-user-id');
  const raw = (...values: string[]): string[] => values.flatMap((v) => ['X-User-Id', v]);

  test('absent or empty: no key (the weighted split decides)', () => {
    assert.equal(s.keyOf({}, []), undefined);
    assert.equal(s.keyOf({ 'x-user-id': '' }, raw('')), undefined);
    assert.equal(s.keyOf({ 'x-other': 'bob' }, ['x-other', 'bob']), undefined);
  });

  test('the value as sent, capped at STICKY_KEY_MAX characters', () => {
    assert.equal(s.keyOf({ 'x-user-id': 'bob' }, raw('bob')), 'bob');
    const huge = 'h'.repeat(100_000);
    assert.equal(s.keyOf({ 'x-user-id': huge }, raw(huge)), 'h'.repeat(STICKY_KEY_MAX));
  });

  test('a repeated header: the first line\'s value; one value containing a comma is kept whole', () => {
    assert.equal(s.keyOf({ 'x-user-id': 'alice, mallory' }, raw('alice', 'mallory')), 'alice');
    assert.equal(s.keyOf({ 'x-user-id': 'Doe, Jane' }, raw('Doe, Jane')), 'Doe, Jane');
    assert.equal(s.keyOf({ 'x-user-id': 'Doe, Jane, mallory' }, ['x-user-id', 'Doe, Jane', 'x-user-id', 'mallory']), 'Doe, Jane');
    assert.equal(s.keyOf({ 'x-user-id': ', bob' }, raw('', 'bob')), undefined, 'an empty first value is no key');
  });
});
