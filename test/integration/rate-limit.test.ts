import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { config, startGateway, startUpstream, withTestListeners, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { manualClock, type ManualClock } from '../helpers/clock.ts';
import { assertGatewayError, bearer, call, waitFor, type Reply } from '../helpers/http.ts';
import { startRedis } from '../helpers/redis.ts';

// SPEC §2 `rate_limit` from outside, in-process buckets: a real gateway on a manual clock
// (tokens come back only when the test says so) in front of a real upstream.

const PRIMARY = 'rate-limit-key-1';
const SECONDARY = 'rate-limit-key-2';
let up: TestUpstream;
let gw: TestGateway;
let clock: ManualClock;

const doc = (cars: Record<string, unknown>): Record<string, unknown> => {
  const ep = (extra: Record<string, unknown>) => ({
    keys: { primary: PRIMARY, secondary: SECONDARY },
    traffic: { blue: 100 },
    deployments: { blue: { instances: [up.url] } },
    ...extra,
  });
  return {
    endpoints: {
      cars: ep({ rate_limit: { requests_per_second: 1, burst: 2 }, ...cars }),
      boats: ep({ rate_limit: { requests_per_second: 0.5, burst: 1, per: 'caller' } }),
      free: ep({}),
    },
  };
};

before(async () => {
  up = await startUpstream('blue');
  clock = manualClock();
  gw = await startGateway(doc({}), { clock: clock.now });
});
after(async () => {
  await gw?.close();
  await up?.close();
});

const invoke = (ep: string, key = PRIMARY): Promise<Reply> =>
  call(`${gw.url}/endpoints/${ep}/score`, { body: '{"x":1}', headers: bearer(key) });

/** Wait out the bucket (the manual clock only moves when told). */
const refill = (): void => clock.advance(60_000);

test('burst requests pass with RateLimit headers; the next gets 429 TooManyRequests with Retry-After', async () => {
  refill();
  const seen = up.seen.length;
  const first = await invoke('cars');
  assert.equal(first.status, 200);
  assert.equal(first.json().deployment, 'blue', 'the model answered');
  assert.equal(first.headers['ratelimit-policy'], '"endpoint";q=2;w=2');
  assert.equal(first.headers['ratelimit'], '"endpoint";r=1;t=1');
  const second = await invoke('cars');
  assert.equal(second.status, 200);
  assert.equal(second.headers['ratelimit'], '"endpoint";r=0;t=1');

  clock.advance(400);
  const refused = await invoke('cars');
  assertGatewayError(refused, 429, 'TooManyRequests');
  assert.equal(refused.headers['retry-after'], '1', '600 ms to the next token, in whole seconds');
  assert.equal(refused.headers['ratelimit-policy'], '"endpoint";q=2;w=2');
  assert.equal(refused.headers['ratelimit'], '"endpoint";r=0;t=1');
  assert.equal(up.seen.length, seen + 2, 'the refused request never reached the model');

  clock.advance(600);
  assert.equal((await invoke('cars')).status, 200, 'admitted once the token is back');
});

test('a refusal is counted as throttled (rate_limit) and named on the access line', async () => {
  refill();
  const before = await throttled('cars', 'rate_limit');
  for (let i = 0; i < 4; i++) await invoke('cars');
  await waitFor(async () => (await throttled('cars', 'rate_limit')) === before + 2, 'two throttled requests counted');
  const lines = gw.logs.access().filter((l) => l.endpoint === 'cars' && l.status === 429);
  assert.ok(lines.length >= 2);
  assert.equal(lines.at(-1)!.throttle, 'rate_limit');
});

test('per caller: each key slot has its own bucket', async () => {
  refill();
  assert.equal((await invoke('boats', PRIMARY)).status, 200);
  const refused = await invoke('boats', PRIMARY);
  assertGatewayError(refused, 429, 'TooManyRequests');
  assert.equal(refused.headers['retry-after'], '2');
  assert.equal(refused.headers['ratelimit-policy'], '"caller";q=1;w=2');
  const other = await invoke('boats', SECONDARY);
  assert.equal(other.status, 200, 'the secondary key is another caller');
  assert.equal(other.headers['ratelimit'], '"caller";r=0;t=2');
  // A caller without valid credentials is refused by auth first and spends nothing.
  const anon = await call(`${gw.url}/endpoints/boats/score`, { body: '{}' });
  assert.equal(anon.status, 401);
  assert.equal(anon.headers['ratelimit'], undefined);
});

test('an endpoint without rate_limit is not limited and carries no RateLimit headers', async () => {
  for (let i = 0; i < 5; i++) {
    const r = await invoke('free');
    assert.equal(r.status, 200);
    assert.equal(r.headers['ratelimit'], undefined);
    assert.equal(r.headers['ratelimit-policy'], undefined);
  }
});

test('a reload that keeps rate_limit keeps the buckets; one that changes it starts afresh', async () => {
  refill();
  assert.equal((await invoke('cars')).status, 200);
  assert.equal((await invoke('cars')).status, 200);
  gw.gw.store.apply(config(withTestListeners(doc({ sticky: { header: 'x-user' } }))));
  assert.equal((await invoke('cars')).status, 429, 'same limit: still empty after the reload');
  gw.gw.store.apply(config(withTestListeners(doc({ rate_limit: { requests_per_second: 1, burst: 3 } }))));
  const r = await invoke('cars');
  assert.equal(r.status, 200, 'a new limit starts with a full bucket');
  assert.equal(r.headers['ratelimit-policy'], '"endpoint";q=3;w=3');
  assert.equal(r.headers['ratelimit'], '"endpoint";r=2;t=1');
  gw.gw.store.apply(config(withTestListeners(doc({}))));
});

async function throttled(endpoint: string, reason: string): Promise<number> {
  const r = await call(`${gw.adminUrl}/metrics`);
  const line = r.body.split('\n').find((l) => l.startsWith('switchyard_throttled_total{') && l.includes(`endpoint="${endpoint}"`) && l.includes(`reason="${reason}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

// ---- with a shared store (state.redis_url): real redis-server processes ----------------------

const shareDoc = (redisUrl: string, onError: 'local' | 'open' | 'closed', rateLimit: Record<string, unknown>): Record<string, unknown> => ({
  state: { redis_url: redisUrl, on_redis_error: onError },
  endpoints: {
    cars: {
      keys: { primary: PRIMARY },
      traffic: { blue: 100 },
      deployments: { blue: { instances: [up.url] } },
      rate_limit: rateLimit,
    },
  },
});

async function connected(...gws: TestGateway[]): Promise<void> {
  await waitFor(() => gws.every((g) => g.gw.shared?.degraded === false), 'the shared store connected');
}

test('two gateways sharing a Redis share one limit; the headers come from the shared bucket', async () => {
  const redis = await startRedis();
  const limit = { requests_per_second: 0.2, burst: 4 }; // a token every 5 s: none comes back during the test
  const a = await startGateway(shareDoc(redis.url, 'closed', limit));
  const b = await startGateway(shareDoc(redis.url, 'closed', limit));
  try {
    await connected(a, b);
    const replies: Reply[] = [];
    for (let i = 0; i < 8; i++) replies.push(await call(`${(i % 2 ? b : a).url}/endpoints/cars/score`, { body: '{}', headers: bearer(PRIMARY) }));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200, 429, 429, 429, 429], 'burst 4 across both, not 4 each');
    assert.deepEqual(replies.slice(0, 4).map((r) => r.headers['ratelimit']), [
      '"endpoint";r=3;t=5', // one token out: full again in 5 s
      '"endpoint";r=2;t=10',
      '"endpoint";r=1;t=15',
      '"endpoint";r=0;t=5', // empty: the next admission in 5 s
    ]);
    const refused = replies[4]!;
    assertGatewayError(refused, 429, 'TooManyRequests');
    assert.equal(refused.headers['retry-after'], '5');
    assert.equal(refused.headers['ratelimit'], '"endpoint";r=0;t=5');
    assert.equal(refused.headers['ratelimit-policy'], '"endpoint";q=4;w=20');
    assert.equal(refused.headers['x-switchyard-degraded'], undefined);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
  }
});

test('Redis slow, then stopped: on_redis_error local splits the limit by replicas, open admits, closed answers 503; all recover', async (t) => {
  const redis = await startRedis();
  if (!redis.own) {
    await redis.stop();
    t.skip('REDIS_URL names a server this test may not stop');
    return;
  }
  const limit = { requests_per_second: 30, burst: 30 };
  const fallbackClock = manualClock(); // the local fallback's buckets; Redis decides on its own clock
  const local = await startGateway(shareDoc(redis.url, 'local', limit), { clock: fallbackClock.now });
  const open = await startGateway(shareDoc(redis.url, 'open', limit), { clock: fallbackClock.now });
  const closed = await startGateway(shareDoc(redis.url, 'closed', limit), { clock: fallbackClock.now });
  const all = [local, open, closed];
  const invokeAt = (g: TestGateway): Promise<Reply> => call(`${g.url}/endpoints/cars/score`, { body: '{}', headers: bearer(PRIMARY) });
  try {
    await connected(...all);
    await waitFor(() => all.every((g) => g.gw.shared?.replicas === 3), 'every replica sees the three');

    // Slow: Redis holds every command for 1 s. Each request waits only the call's deadline,
    // and is decided by on_redis_error; one late call does not make the store degraded.
    await redis.pause(1000);
    const slow = await Promise.all(all.map(async (g) => {
      const began = performance.now();
      const r = await invokeAt(g);
      return { r, ms: performance.now() - began };
    }));
    assert.deepEqual(slow.map(({ r }) => r.status), [200, 200, 503]);
    for (const { r, ms } of slow) {
      assert.equal(r.headers['x-switchyard-degraded'], 'shared-state');
      assert.ok(ms < 500, `answered in ${ms.toFixed(0)} ms, not after Redis' 1 s`);
    }
    assert.ok(all.every((g) => g.gw.shared?.degraded === false), 'one late call is not an outage');
    await waitFor(async () => (await invokeAt(open)).headers['x-switchyard-degraded'] === undefined, 'Redis answering again');

    // Stopped: every gateway degrades and stops calling it.
    await redis.stop();
    await waitFor(() => all.every((g) => g.gw.shared?.degraded === true), 'every gateway degraded');

    // local: 30/s ÷ 3 replicas = a bucket of 10 in this process (full again: the slow call took one).
    fallbackClock.advance(10_000);
    const locally: Reply[] = [];
    for (let i = 0; i < 12; i++) locally.push(await invokeAt(local));
    assert.deepEqual(locally.map((r) => r.status), [...Array(10).fill(200), 429, 429]);
    assert.ok(locally.every((r) => r.headers['x-switchyard-degraded'] === 'shared-state'));
    assert.equal(locally[0]!.headers['ratelimit'], '"endpoint";r=27;t=1', '9 left here × 3 replicas');
    assertGatewayError(locally[11]!, 429, 'TooManyRequests');

    // open: every request passes, marked.
    for (let i = 0; i < 35; i++) {
      const r = await invokeAt(open);
      assert.equal(r.status, 200);
      assert.equal(r.headers['x-switchyard-degraded'], 'shared-state');
    }

    // A reload changes on_redis_error at once (the connection itself only on restart: said once).
    open.gw.apply(config(withTestListeners(shareDoc(redis.url, 'closed', limit))));
    assertGatewayError(await invokeAt(open), 503, 'SharedStateUnavailable');
    open.gw.apply(config(withTestListeners(shareDoc('redis://127.0.0.1:1', 'open', limit))));
    assert.equal((await invokeAt(open)).status, 200);
    assert.equal(open.logs.lines.filter((l) => l.msg === 'the shared state connection changes only on restart').length, 1);

    // closed: 503 SharedStateUnavailable with Retry-After, counted as throttled (degraded).
    const refused = await invokeAt(closed);
    assertGatewayError(refused, 503, 'SharedStateUnavailable');
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(refused.headers['x-switchyard-degraded'], 'shared-state');
    const metrics = (await call(`${closed.adminUrl}/metrics`)).body;
    assert.match(metrics, /switchyard_throttled_total\{endpoint="cars",reason="degraded"\} 2/, 'the slow call and this one');
    assert.match(metrics, /switchyard_state_degraded 1/);

    // Redis is back on the same port: decisions go back to it, unmarked.
    await redis.restart();
    await connected(...all);
    const back: Reply[] = [];
    for (const g of all) back.push(await invokeAt(g));
    assert.deepEqual(back.map((r) => r.status), [200, 200, 200]);
    assert.ok(back.every((r) => r.headers['x-switchyard-degraded'] === undefined));
    assert.equal(back[0]!.headers['ratelimit'], '"endpoint";r=29;t=1', 'a fresh shared bucket (Redis restarted empty)');
    // Decided by Redis again: `open` reports a count, `local` is not bound by its drained fallback.
    for (const r of back) assert.match(String(r.headers['ratelimit']), /^"endpoint";r=2\d;t=1$/);
  } finally {
    await Promise.all(all.map((g) => g.close()));
    await redis.stop();
  }
});
