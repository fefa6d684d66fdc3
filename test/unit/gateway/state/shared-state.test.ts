import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import pino from 'pino';
import { Metrics } from '../../../../gateway/metrics.ts';
import {
  BUCKET_PREFIX, createSharedState, REPLICAS_KEY, SharedStateUnavailableError,
  type SharedState, type SharedStateTuning,
} from '../../../../gateway/state/shared-state.ts';
import type { BucketDecision } from '../../../../policies/policy.ts';
import { config, DEAD_HOST, deadPort, LogCapture } from '../../../helpers/gateway.ts';
import { waitFor } from '../../../helpers/http.ts';
import { startRedis, type TestRedis } from '../../../helpers/redis.ts';

// The shared state over a real redis-server: GCRA decisions, one bucket and one replica
// count across stores, and the breaker when Redis dies, is slow, or is missing at the start.
// Real time throughout (Redis keeps the clock), with short rates and event-driven waits.

/** The product's call deadline (50 ms) plus timer slack on a busy 2-core machine. */
const FAIL_FAST_MS = 60;
/** The product's timings, shortened where only the test's patience depends on them. */
const FAST: Partial<SharedStateTuning> = { heartbeatMs: 100, probeMs: 50, connectTimeoutMs: 300, maxBackoffMs: 100 };

const ENDPOINTS = {
  cars: { keys: { primary: 'shared-state-test-key' }, traffic: { blue: 100 }, deployments: { blue: { instances: ['http://127.0.0.1:9'] } } },
};

interface Store {
  readonly state: SharedState;
  readonly logs: LogCapture;
  readonly metrics: Metrics;
}

let redis: TestRedis;
let admin: Redis;
before(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
after(async () => {
  admin?.disconnect();
  await redis?.stop();
});

function open(t: TestContext, url: string, tuning: Partial<SharedStateTuning> = FAST): Store {
  const logs = new LogCapture();
  const metrics = new Metrics();
  const state = createSharedState(config({ state: { redis_url: url }, endpoints: ENDPOINTS }), {
    log: pino({ level: 'info' }, logs), metrics, tuning,
  });
  assert.ok(state, 'a redis_url gives a shared state');
  t.after(() => state.close());
  return { state, logs, metrics };
}

async function connected(s: Store): Promise<void> {
  await waitFor(() => !s.state.degraded, 'the store to connect', 5000);
}

async function gauge(s: Store): Promise<number | undefined> {
  return (await s.metrics.stateDegraded.get()).values[0]?.value;
}

const lines = (s: Store, msg: string) => s.logs.lines.filter((l) => l.msg === msg);
const ENTER = 'shared state unavailable: limits follow state.on_redis_error until it recovers';
const LEAVE = 'shared state recovered';

/** How long a promise takes to settle (ms), and how. */
async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

async function takeN(s: SharedState, key: string, rate: number, burst: number, n: number): Promise<BucketDecision[]> {
  const out: BucketDecision[] = [];
  for (let i = 0; i < n; i++) out.push(await s.take(key, rate, burst));
  return out;
}

test('without state.redis_url there is no shared state', () => {
  const none = createSharedState(config({ endpoints: ENDPOINTS }), { log: pino({ level: 'silent' }), metrics: new Metrics() });
  assert.equal(none, undefined);
});

test('a burst is admitted at once, then the bucket refuses with the time until the next token', async (t) => {
  const s = open(t, redis.url);
  await connected(s);
  assert.equal(await gauge(s), 0);
  const key = `burst-${randomUUID()}`;
  // One token a second: nothing refills within the test.
  const d = await takeN(s.state, key, 1, 5, 6);
  assert.deepEqual(d.map((x) => x.allowed), [true, true, true, true, true, false]);
  assert.deepEqual(d.map((x) => x.remaining), [4, 3, 2, 1, 0, 0]);
  for (const [i, x] of d.slice(0, 5).entries()) {
    // Full again once every admitted request has been paid back at the rate.
    assert.ok(x.resetMs <= (i + 1) * 1000 && x.resetMs > (i + 1) * 1000 - 200, `reset ${x.resetMs} after ${i + 1}`);
    assert.equal(x.retryAfterMs, 0);
  }
  const refused = d[5]!;
  assert.ok(refused.retryAfterMs > 800 && refused.retryAfterMs <= 1000, `retry after ${refused.retryAfterMs}`);
  assert.ok(refused.resetMs > 4800 && refused.resetMs <= 5000, `reset ${refused.resetMs}`);
  // The bucket is one key under the prefix, expiring when it would be full again.
  const ttl = await admin.pttl(BUCKET_PREFIX + key);
  assert.ok(ttl > 4500 && ttl <= 5000, `ttl ${ttl}`);
});

test('after the burst, requests are admitted at the rate, and an idle bucket vanishes', async (t) => {
  const s = open(t, redis.url);
  await connected(s);
  const key = `rate-${randomUUID()}`;
  // 20 a second, burst 2: one token every 50 ms.
  const d = await takeN(s.state, key, 20, 2, 3);
  assert.deepEqual(d.map((x) => x.allowed), [true, true, false]);
  const wait = d[2]!.retryAfterMs;
  assert.ok(wait > 0 && wait <= 50, `retry after ${wait}`);
  await sleep(wait);
  const next = await s.state.take(key, 20, 2);
  assert.equal(next.allowed, true, 'one token came back after retryAfterMs');
  assert.equal((await s.state.take(key, 20, 2)).allowed, false, 'and only one');
  await waitFor(async () => (await admin.exists(BUCKET_PREFIX + key)) === 0, 'the full bucket to expire', 2000);
});

test('two stores on one Redis draw from one bucket', async (t) => {
  const a = open(t, redis.url);
  const b = open(t, redis.url);
  await connected(a);
  await connected(b);
  const key = `shared-${randomUUID()}`;
  const seen: BucketDecision[] = [];
  for (let i = 0; i < 8; i++) seen.push(await (i % 2 === 0 ? a : b).state.take(key, 1, 4));
  assert.deepEqual(seen.map((x) => x.allowed), [true, true, true, true, false, false, false, false]);
  assert.deepEqual(seen.slice(0, 4).map((x) => x.remaining), [3, 2, 1, 0]);
});

test('each store counts the replicas sharing the Redis, and a closed one leaves the count at once', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  const stores = [open(t, r.url), open(t, r.url), open(t, r.url)];
  assert.ok(stores.every((s) => s.state.replicas === 1), 'one replica until a heartbeat says otherwise');
  await waitFor(() => stores.every((s) => s.state.replicas === 3), 'three replicas seen by all', 3000);
  const c = new Redis(r.url);
  t.after(() => c.disconnect());
  assert.equal(await c.zcard(REPLICAS_KEY), 3);
  await stores[2]!.state.close();
  assert.equal(await c.zcard(REPLICAS_KEY), 2, 'the closed store removed itself');
  await waitFor(() => stores.slice(0, 2).every((s) => s.state.replicas === 2), 'two replicas seen by the rest', 3000);
  // The set expires with the last heartbeat: no replica left, no key.
  const ttl = await c.pttl(REPLICAS_KEY);
  assert.ok(ttl > 0 && ttl <= 350, `ttl ${ttl}`);
});

test('Redis stopping: degraded at once, calls refused without touching Redis, one warn line; back: one info line', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  if (!r.own) return t.skip('REDIS_URL: cannot stop that server');
  const s = open(t, r.url);
  await connected(s);
  // One line for the start: "connected", or, when a loaded machine made the first connect
  // slower than this test's connect deadline, "unavailable" then "recovered".
  assert.equal(lines(s, 'shared state connected').length + lines(s, LEAVE).length, 1);
  const base = s.logs.lines.length;
  const since = (msg: string) => s.logs.lines.slice(base).filter((l) => l.msg === msg);

  const stoppedAt = performance.now();
  await r.stop();
  await waitFor(() => s.state.degraded, 'degraded', 2000);
  assert.ok(performance.now() - stoppedAt < 1000, 'the closed connection says so at once');
  assert.equal(await gauge(s), 1);
  for (let i = 0; i < 20; i++) {
    const { ms, error } = await timed(s.state.take('down', 10, 10));
    assert.ok(error instanceof SharedStateUnavailableError, 'refused');
    assert.ok(ms < FAIL_FAST_MS, `settled in ${ms.toFixed(1)} ms`);
  }
  // Several reconnect attempts fail meanwhile (backoff capped at 100 ms here): none is logged.
  await sleep(300);
  await r.restart();
  await waitFor(() => !s.state.degraded, 'recovered', 3000);
  assert.equal(await gauge(s), 0);
  const enter = since(ENTER);
  assert.equal(enter.length, 1, 'one warn line for the outage');
  assert.equal(enter[0]!.level, 40);
  assert.equal(enter[0]!.redis, `127.0.0.1:${new URL(r.url).port}`);
  assert.equal(enter[0]!.on_redis_error, 'local');
  const leave = since(LEAVE);
  assert.equal(leave.length, 1, 'one info line on recovery');
  assert.equal(leave[0]!.level, 30);
  assert.ok(typeof leave[0]!.down_ms === 'number' && leave[0]!.down_ms >= 300);
  assert.equal(s.logs.lines.length - base, 2, 'unavailable, recovered: nothing per failed call');
  assert.equal((await s.state.take(`after-${randomUUID()}`, 10, 10)).allowed, true, 'decisions come from Redis again');
});

test('a slow Redis: each call gives up at its deadline, the breaker opens within three, and closes when Redis answers', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  // Slow heartbeats: only the takes below count towards the breaker.
  const s = open(t, r.url, { ...FAST, heartbeatMs: 5000 });
  await connected(s);
  await r.pause(800);
  let calls = 0;
  while (!s.state.degraded) {
    const { ms, error } = await timed(s.state.take('slow', 10, 10));
    calls++;
    assert.ok(error instanceof SharedStateUnavailableError, 'a late reply counts as a failure');
    assert.ok(ms < FAIL_FAST_MS, `call ${calls} settled in ${ms.toFixed(1)} ms`);
    assert.ok(calls <= 3, 'three failures in a row trip the breaker');
  }
  assert.equal(calls, 3);
  assert.equal(await gauge(s), 1);
  for (let i = 0; i < 10; i++) {
    const { ms, error } = await timed(s.state.take('slow', 10, 10));
    assert.ok(error instanceof SharedStateUnavailableError);
    assert.ok(ms < 5, `refused in ${ms.toFixed(2)} ms without asking Redis`);
  }
  const enter = lines(s, ENTER);
  assert.equal(enter.length, 1);
  assert.equal(enter[0]!.reason, 'timeout');
  await waitFor(() => !s.state.degraded, 'recovered after the pause', 3000);
  assert.equal(await gauge(s), 0);
  assert.equal(lines(s, ENTER).length, 1);
  assert.equal(lines(s, LEAVE).length, 1);
  assert.equal((await s.state.take(`after-${randomUUID()}`, 10, 10)).allowed, true);
});

test('a stall of this process longer than the deadline times out the calls in flight but does not trip the breaker', async (t) => {
  const s = open(t, redis.url, { ...FAST, heartbeatMs: 5000 });
  await connected(s);
  const key = `stall-${randomUUID()}`;
  // Send, then block the event loop past the 50 ms deadline while Redis' replies wait in the
  // socket: from the check phase, so the next turn runs the expired timers before reading them.
  // The calls are written together by a setImmediate of ioredis (auto-pipelining, one write
  // for all), so the stall comes from a setImmediate queued after it: right after that write.
  const inFlight = await new Promise<Promise<{ error?: unknown }>[]>((resolve) => setImmediate(() => {
    const calls = Array.from({ length: 20 }, () => timed(s.state.take(key, 1000, 1000)));
    setImmediate(() => {
      const until = performance.now() + 80;
      while (performance.now() < until);
      resolve(calls);
    });
  }));
  const settled = await Promise.all(inFlight);
  assert.ok(settled.some((x) => x.error instanceof SharedStateUnavailableError), 'the stall timed calls out');
  assert.equal(s.state.degraded, false, 'one stall is one failure, not an outage');
  assert.equal((await s.state.take(key, 1000, 1000)).allowed, true);
  assert.equal(lines(s, ENTER).length, 0);
});

test('Redis down at the start: the store starts degraded, says so once, and connects when Redis comes up', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  if (!r.own) return t.skip('REDIS_URL: cannot stop that server');
  await r.stop();
  const s = open(t, r.url);
  assert.equal(s.state.degraded, true, 'degraded before the first connection');
  assert.equal(await gauge(s), 1);
  const { ms, error } = await timed(s.state.take('start', 10, 10));
  assert.ok(error instanceof SharedStateUnavailableError && ms < FAIL_FAST_MS);
  await s.state.settled;
  assert.equal(lines(s, ENTER).length, 1);
  assert.equal(lines(s, ENTER)[0]!.reason, 'ECONNREFUSED');
  assert.equal(s.state.replicas, 1);
  await r.restart();
  await waitFor(() => !s.state.degraded, 'connected once Redis is up', 3000);
  assert.equal(await gauge(s), 0);
  assert.equal(lines(s, ENTER).length, 1);
  assert.equal(lines(s, LEAVE).length, 1);
  assert.equal(s.state.replicas, 1);
});

test('the password in state.redis_url reaches no log line, and close() does not wait for a Redis that is gone', async (t) => {
  const port = await deadPort();
  const s = open(t, `redis://switchyard:s3cret-pw@${DEAD_HOST}:${port}`);
  await s.state.settled;
  assert.equal(lines(s, ENTER).length, 1);
  assert.equal(lines(s, ENTER)[0]!.redis, `${DEAD_HOST}:${port}`);
  assert.ok(s.logs.raw.every((l) => !l.includes('s3cret-pw')), s.logs.raw.join('\n'));
  const { ms } = await timed(s.state.close());
  assert.ok(ms < 50, `closed in ${ms.toFixed(1)} ms`);
});
