import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BucketDecision, PolicyDeps, SharedLimits } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, type FakeDeps } from '../../../helpers/policy.ts';
import { admitted, decide, decideAsync, key, policy, token } from './decide.ts';

// The rate limit with a shared store (state.redis_url), against a stand-in for the store's
// interface; the real Redis owner is exercised through gateways in test/integration.

/** A shared store that answers from a local bucket and records the calls (the real one is tested through the gateway). */
class FakeShared implements SharedLimits {
  onError: 'local' | 'open' | 'closed' = 'local';
  degraded = false;
  replicas = 1;
  fail = false;
  readonly calls: { key: string; rate: number; burst: number }[] = [];
  answer: BucketDecision = { allowed: true, remaining: 7, retryAfterMs: 0, resetMs: 2500 };
  take(key: string, ratePerSecond: number, burst: number): Promise<BucketDecision> {
    this.calls.push({ key, rate: ratePerSecond, burst });
    return this.fail ? Promise.reject(new Error('redis timeout')) : Promise.resolve(this.answer);
  }
}

function sharedDeps(shared: FakeShared, over: Partial<PolicyDeps> = {}): FakeDeps {
  return fakeDeps({ shared, ...over });
}

test('shared: one take() per decision with the configured limit (not divided), answered as the store decided', async () => {
  const shared = new FakeShared();
  const p = policy({ requests_per_second: 4, burst: 10 }, sharedDeps(shared, { workers: 4 }));
  const ctx = new FakeContext();
  const v = p.evaluate(ctx);
  assert.ok(v instanceof Promise, 'a shared decision is asynchronous');
  assert.equal((await v).kind, 'continue');
  assert.deepEqual(shared.calls, [{ key: 'cars:endpoint:4:10', rate: 4, burst: 10 }]);
  assert.deepEqual(Object.fromEntries(ctx.added), { 'RateLimit-Policy': '"endpoint";q=10;w=3', RateLimit: '"endpoint";r=7;t=3' });

  shared.answer = { allowed: false, remaining: 0, retryAfterMs: 1200, resetMs: 9000 };
  const refused = await decideAsync(p);
  assert.equal(refused.code, 'TooManyRequests');
  assert.equal(refused.reason, 'rate_limit');
  assert.equal(refused.retryAfter, '2');
  assert.equal(refused.headers['RateLimit'], '"endpoint";r=0;t=2');
  assert.equal(refused.headers['x-switchyard-degraded'], undefined);

  shared.answer = { allowed: true, remaining: 0, retryAfterMs: 0, resetMs: 2_250 + 250 };
  assert.equal((await decideAsync(p)).headers['RateLimit'], '"endpoint";r=0;t=1', 'the last token: t is until the next one (250 ms)');
});

test('shared, per caller: the store key names the caller', async () => {
  const shared = new FakeShared();
  const p = policy({ requests_per_second: 1, per: 'caller' }, sharedDeps(shared));
  await decideAsync(p, { principal: key('secondary') });
  await decideAsync(p, { principal: token('0000-oid') });
  await decideAsync(p, { clientIp: '2001:db8::1' });
  assert.deepEqual(shared.calls.map((c) => c.key), [
    'cars:caller:1:1:key:secondary',
    'cars:caller:1:1:aad_token:0000-oid',
    'cars:caller:1:1:ip:2001:db8::1',
  ]);
});

test('shared, degraded, on_redis_error local: no store call; per-process buckets at the limit ÷ replicas', () => {
  const shared = new FakeShared();
  shared.degraded = true;
  shared.replicas = 6;
  const deps = sharedDeps(shared, { workers: 2 });
  const p = policy({ requests_per_second: 60, burst: 60 }, deps);
  const first = decide(p);
  assert.equal(first.kind, 'continue');
  assert.equal(first.headers['x-switchyard-degraded'], 'shared-state');
  assert.equal(first.headers['RateLimit'], '"endpoint";r=54;t=1', '9 left here × 6 processes');
  assert.equal(admitted(p, 20), 9, '60 / 6 processes (replicas counts workers too) = 10 per process');
  assert.equal(decide(p).retryAfter, '1');
  assert.equal(shared.calls.length, 0, 'a degraded store is not called');
  // Fewer replicas known: each share grows; never beyond this machine's own workers' share.
  shared.replicas = 1;
  deps.manual.advance(1000);
  assert.equal(admitted(p, 40), 30, '60 / 2 workers');
});

test('shared, degraded, on_redis_error open: admitted without a decision, marked degraded', () => {
  const shared = new FakeShared();
  shared.degraded = true;
  shared.onError = 'open';
  const p = policy({ requests_per_second: 1, burst: 1 }, sharedDeps(shared));
  for (let i = 0; i < 5; i++) {
    const d = decide(p);
    assert.equal(d.kind, 'continue');
    assert.equal(d.headers['x-switchyard-degraded'], 'shared-state');
    assert.equal(d.headers['RateLimit-Policy'], '"endpoint";q=1;w=1');
    assert.equal(d.headers['RateLimit'], undefined, 'no live count is known');
  }
  assert.equal(shared.calls.length, 0);
});

test('shared, degraded, on_redis_error closed: 503 SharedStateUnavailable, reason degraded', () => {
  const shared = new FakeShared();
  shared.degraded = true;
  shared.onError = 'closed';
  const p = policy({ requests_per_second: 100 }, sharedDeps(shared));
  const d = decide(p);
  assert.equal(d.kind, 'reject');
  assert.equal(d.code, 'SharedStateUnavailable');
  assert.equal(d.reason, 'degraded');
  assert.equal(d.headers['x-switchyard-degraded'], 'shared-state');
  assert.equal(shared.calls.length, 0);
});

test('shared: a take() that fails is handled by on_redis_error for that request; the next one asks the store again', async () => {
  for (const [onError, expected] of [['local', 'continue'], ['open', 'continue'], ['closed', 'SharedStateUnavailable']] as const) {
    const shared = new FakeShared();
    shared.onError = onError;
    shared.fail = true;
    const p = policy({ requests_per_second: 10 }, sharedDeps(shared));
    const d = await decideAsync(p);
    assert.equal(d.code ?? d.kind, expected, onError);
    assert.equal(d.headers['x-switchyard-degraded'], 'shared-state', onError);
    shared.fail = false;
    const next = await decideAsync(p);
    assert.equal(next.kind, 'continue');
    assert.equal(next.headers['x-switchyard-degraded'], undefined);
    assert.equal(shared.calls.length, 2);
  }
});

test('shared: recovery goes back to the store as soon as it is no longer degraded', async () => {
  const shared = new FakeShared();
  shared.degraded = true;
  const p = policy({ requests_per_second: 10 }, sharedDeps(shared));
  assert.ok(!(p.evaluate(new FakeContext()) instanceof Promise));
  shared.degraded = false;
  const v = p.evaluate(new FakeContext());
  assert.ok(v instanceof Promise);
  await v;
  assert.equal(shared.calls.length, 1);
});
