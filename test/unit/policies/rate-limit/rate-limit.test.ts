import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_CALLERS } from '../../../../policies/rate-limit/caller-cells.ts';
import type { LocalLimiter } from '../../../../policies/rate-limit/local-limiter.ts';
import { defaultBurst, rateLimitFactory } from '../../../../policies/rate-limit/rate-limit.ts';
import type { Policy } from '../../../../policies/policy.ts';
import { fakeDeps, scopeOf } from '../../../helpers/policy.ts';
import { admitted, decide, doc, key, policy, token } from './decide.ts';

// In-process limits (no state.redis_url); the shared-store paths are in rate-limit-shared.test.ts.

// ---- compile -------------------------------------------------------------------------------

test('compile: no rate_limit section, no policy', () => {
  assert.equal(rateLimitFactory.create(scopeOf(doc()), fakeDeps()), undefined);
  assert.equal(rateLimitFactory.stage, 'endpoint');
});

test('compile: a rate_limit section is an endpoint policy named after the endpoint', () => {
  assert.equal(policy({ requests_per_second: 5 }).name, 'cars.rate-limit');
});

test('compile: without burst the bucket holds one second of requests, at least one', () => {
  assert.equal(defaultBurst(10), 10);
  assert.equal(defaultBurst(2.5), 3);
  assert.equal(defaultBurst(0.5), 1);
  assert.equal(decide(policy({ requests_per_second: 10 })).headers['RateLimit-Policy'], '"endpoint";q=10;w=1');
  assert.equal(decide(policy({ requests_per_second: 0.5 })).headers['RateLimit-Policy'], '"endpoint";q=1;w=2');
  assert.equal(admitted(policy({ requests_per_second: 10 }), 20), 10);
  assert.equal(admitted(policy({ requests_per_second: 0.5 }), 5), 1);
});

// ---- the bucket ----------------------------------------------------------------------------

test('a full bucket admits burst requests at once, then refuses with 429 rate_limit', () => {
  const p = policy({ requests_per_second: 2, burst: 5 });
  assert.equal(admitted(p, 5), 5);
  const refused = decide(p);
  assert.equal(refused.kind, 'reject');
  assert.equal(refused.code, 'TooManyRequests');
  assert.equal(refused.reason, 'rate_limit');
});

test('tokens come back at the configured rate, and no faster', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 4, burst: 2 }, deps);
  assert.equal(admitted(p, 3), 2);
  deps.manual.advance(249);
  assert.equal(admitted(p, 1), 0, 'a token takes 250 ms');
  deps.manual.advance(1);
  assert.equal(admitted(p, 2), 1, 'one token after 250 ms');
  deps.manual.advance(10_000);
  assert.equal(admitted(p, 5), 2, 'an idle bucket fills up to burst, not beyond');
  // A steady 4/s is admitted indefinitely.
  for (let i = 0; i < 40; i++) {
    deps.manual.advance(250);
    assert.equal(admitted(p, 1), 1, `request ${i} at the rate`);
  }
});

test('Retry-After is the whole seconds until the next token, from the bucket state', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 0.25, burst: 2 }, deps); // a token every 4 s
  assert.equal(admitted(p, 2), 2);
  assert.equal(decide(p).retryAfter, '4');
  deps.manual.advance(1000);
  assert.equal(decide(p).retryAfter, '3');
  deps.manual.advance(1500);
  assert.equal(decide(p).retryAfter, '2', '1.5 s left rounds up');
  deps.manual.advance(1499);
  assert.equal(decide(p).retryAfter, '1', '1 ms left is still one second');
  deps.manual.advance(1);
  assert.equal(decide(p).kind, 'continue', 'admitted exactly when Retry-After said');
  assert.equal(decide(p).retryAfter, '4');
});

test('refusals spend no tokens: a client hammering a refused bucket still gets in on time', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 1, burst: 1 }, deps);
  assert.equal(admitted(p, 1), 1);
  for (let t = 0; t < 10; t++) {
    deps.manual.advance(99);
    decide(p);
  }
  deps.manual.advance(10);
  assert.equal(admitted(p, 1), 1);
});

// ---- headers -------------------------------------------------------------------------------

test('admitted responses carry RateLimit-Policy and RateLimit (r left, t until full)', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 500, burst: 1000 }, deps);
  const first = decide(p);
  assert.equal(first.kind, 'continue');
  assert.equal(first.headers['RateLimit-Policy'], '"endpoint";q=1000;w=2');
  assert.equal(first.headers['RateLimit'], '"endpoint";r=999;t=1', '2 ms to refill the one token taken: t rounds up to 1 s');
  for (let i = 0; i < 998; i++) decide(p);
  const last = decide(p);
  assert.equal(last.kind, 'continue');
  assert.equal(last.headers['RateLimit'], '"endpoint";r=0;t=1', 'empty: t is until the next admission');
});

test('t counts the seconds until the bucket is full again', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 1, burst: 10 }, deps);
  assert.equal(decide(p).headers['RateLimit'], '"endpoint";r=9;t=1');
  for (let i = 0; i < 5; i++) decide(p);
  assert.equal(decide(p).headers['RateLimit'], '"endpoint";r=3;t=7');
  deps.manual.advance(2500);
  assert.equal(decide(p).headers['RateLimit'], '"endpoint";r=4;t=6', '2.5 tokens back: 4 whole left, 5.5 s to full');
});

test('r counts whole tokens despite float intervals (a seventh of a second each)', () => {
  const p = policy({ requests_per_second: 7, burst: 7 });
  const left = Array.from({ length: 8 }, () => decide(p).headers['RateLimit']);
  assert.deepEqual(left, [6, 5, 4, 3, 2, 1, 0, 0].map((r) => `"endpoint";r=${r};t=1`));
  assert.equal(decide(p).kind, 'reject', 'the eighth was refused, the seventh (on a float edge) was not');
});

test('a high rate keeps its precision on an epoch clock (bucket times count from the bucket\'s creation)', () => {
  const deps = fakeDeps(); // the manual clock starts in 2026: ~1.8e12 ms
  const p = policy({ requests_per_second: 10_000_000, burst: 5 }, deps);
  assert.equal(admitted(p, 10), 5);
  deps.manual.advance(1); // 10 000 tokens' worth: full again, not more
  assert.equal(admitted(p, 10), 5);
  deps.manual.advance(86_400_000); // a day on
  assert.equal(admitted(p, 10), 5);
  assert.equal(admitted(p, 1), 0);
});

test('a refusal carries the same fields, with t equal to Retry-After', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 0.1, burst: 1 }, deps);
  decide(p);
  deps.manual.advance(3000);
  const r = decide(p);
  assert.equal(r.kind, 'reject');
  assert.equal(r.retryAfter, '7');
  assert.equal(r.headers['RateLimit-Policy'], '"endpoint";q=1;w=10');
  assert.equal(r.headers['RateLimit'], '"endpoint";r=0;t=7');
});

// ---- per caller ----------------------------------------------------------------------------

test('per caller: each key slot has its own bucket', () => {
  const p = policy({ requests_per_second: 1, burst: 2, per: 'caller' });
  assert.equal(admitted(p, 5, { principal: key('primary') }), 2);
  assert.equal(admitted(p, 5, { principal: key('secondary') }), 2);
  const h = decide(p, { principal: key('primary') }).headers;
  assert.equal(h['RateLimit-Policy'], '"caller";q=2;w=2');
  assert.equal(h['RateLimit'], '"caller";r=0;t=1');
});

test('per caller: token callers are told apart by oid, and from key slots of the same name', () => {
  const p = policy({ requests_per_second: 1, burst: 1, per: 'caller' });
  assert.equal(admitted(p, 3, { principal: token('oid-a') }), 1);
  assert.equal(admitted(p, 3, { principal: token('oid-b') }), 1);
  assert.equal(admitted(p, 3, { principal: key('oid-a') }), 1, 'a key slot never shares a token subject\'s bucket');
});

test('per caller: without a principal the client IP is the caller', () => {
  const p = policy({ requests_per_second: 1, burst: 1, per: 'caller' });
  assert.equal(admitted(p, 3, { clientIp: '10.0.0.1' }), 1);
  assert.equal(admitted(p, 3, { clientIp: '10.0.0.2' }), 1);
  // The same address with credentials is that principal, not the address.
  assert.equal(admitted(p, 3, { clientIp: '10.0.0.1', principal: key('primary') }), 1);
});

test('per endpoint: every caller shares one bucket', () => {
  const p = policy({ requests_per_second: 1, burst: 2 });
  assert.equal(admitted(p, 1, { principal: key('primary') }), 1);
  assert.equal(admitted(p, 1, { principal: key('secondary') }), 1);
  assert.equal(admitted(p, 1, { clientIp: '10.9.9.9' }), 0);
});

test('per caller: a client spraying source addresses cannot grow the bucket map beyond its cap', () => {
  const deps = fakeDeps();
  const p = policy({ requests_per_second: 1, burst: 5, per: 'caller' }, deps);
  const limiter = deps.state.get<LocalLimiter>('rate-limit:cars:caller:1:5:local:1', () => assert.fail('the policy keeps its limiter in the state registry'));
  // The victim keeps spending (its bucket is never full, so it is not among the first to go).
  assert.equal(admitted(p, 5, { principal: key('primary') }), 5);
  for (let i = 0; i < MAX_CALLERS + 5000; i++) {
    decide(p, { clientIp: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` });
  }
  const ips = limiter.callers!.ips;
  assert.ok(ips.size <= MAX_CALLERS, `${ips.size} IP buckets`);
  assert.ok(ips.size > MAX_CALLERS / 2, 'eviction frees a slice, not everything');
  assert.equal(admitted(p, 1, { principal: key('primary') }), 0, 'other kinds of caller keep their state');
});

// ---- reloads and workers -------------------------------------------------------------------

test('a reload with the same rate_limit keeps the buckets; a changed one starts afresh', () => {
  const deps = fakeDeps();
  const compile = (rl: Record<string, unknown>): Policy => {
    const asked = deps.state.begin();
    const p = policy(rl, deps);
    deps.state.retain(asked);
    return p;
  };
  const first = compile({ requests_per_second: 1, burst: 3 });
  assert.equal(admitted(first, 3), 3);
  const same = compile({ requests_per_second: 1, burst: 3 });
  assert.equal(admitted(same, 1), 0, 'the drained bucket survived the reload');
  const changed = compile({ requests_per_second: 1, burst: 4 });
  assert.equal(admitted(changed, 5), 4, 'a new limit starts full');
  const back = compile({ requests_per_second: 1, burst: 3 });
  assert.equal(admitted(back, 5), 3, 'the old limit\'s state was dropped when no snapshot asked for it');
});

test('with N worker processes each admits its share: rate and burst divided by N', () => {
  const deps = fakeDeps({ workers: 2 });
  const p = policy({ requests_per_second: 10, burst: 10 }, deps);
  const first = decide(p);
  assert.equal(first.headers['RateLimit-Policy'], '"endpoint";q=10;w=1', 'the policy is the configured one');
  assert.equal(first.headers['RateLimit'], '"endpoint";r=8;t=1', 'r estimates the whole limit: 4 left here × 2 processes');
  assert.equal(admitted(p, 10), 4);
  const refused = decide(p);
  assert.equal(refused.kind, 'reject');
  deps.manual.advance(199);
  assert.equal(admitted(p, 1), 0, 'a token every 200 ms at 5/s');
  deps.manual.advance(1);
  assert.equal(admitted(p, 1), 1);
});
