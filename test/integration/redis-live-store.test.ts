import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, beforeEach, test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pino from 'pino';
import type { LiveBackend } from '../../gateway/live-config/backend.ts';
import { EMPTY_DOC, LiveStoreError, type LiveDoc } from '../../gateway/live-config/live-doc.ts';
import {
  CHANGED_CHANNEL, createRedisLiveBackend, DOC_KEY, VERSION_KEY, type RedisLiveOptions,
} from '../../gateway/state/redis-live-store.ts';
import { waitFor } from '../helpers/http.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

// The live document in a real redis-server, shared by several backends (replicas):
// pub/sub delivery, compare-and-set between writers, the poll that heals a lost message,
// Redis going away and coming back. Real time, with short periods and event-driven waits.

/** Log lines, parsed. (Not helpers/gateway.ts' LogCapture: importing the gateway costs 1.5 s.) */
class LogCapture {
  readonly raw: string[] = [];
  readonly lines: Record<string, unknown>[] = [];
  write(line: string): void {
    this.raw.push(line);
    this.lines.push(JSON.parse(line) as Record<string, unknown>);
  }
}

/** A loopback address nothing listens on, and a port there: connections are refused. */
const DEAD_HOST = '127.0.0.254';
async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, DEAD_HOST, r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The product's periods, shortened where only the test's patience depends on them. */
const FAST: Omit<RedisLiveOptions, 'log'> = { pollMs: 50, maxBackoffMs: 100 };

let redis: TestRedis;
let admin: Redis;
before(async () => {
  redis = await startRedis();
  // A short disconnectTimeout: ioredis' default holds the process 2 s after the last test.
  admin = new Redis(redis.url, { disconnectTimeout: 20 });
});
after(async () => {
  admin?.disconnect();
  await redis?.stop();
});
beforeEach(() => admin.flushdb());

interface Replica {
  readonly b: LiveBackend;
  readonly logs: LogCapture;
  /** What its watcher got, in order. */
  readonly seen: LiveDoc[];
}

function open(t: TestContext, url = redis.url, opts: Partial<RedisLiveOptions> = {}): Replica {
  const logs = new LogCapture();
  const b = createRedisLiveBackend(url, { log: pino({ level: 'info' }, logs), ...FAST, ...opts });
  t.after(() => b.close());
  return { b, logs, seen: [] };
}

/** A replica that loaded the document, then watches: what it sees after is news. */
async function watching(t: TestContext, url = redis.url, opts: Partial<RedisLiveOptions> = {}): Promise<Replica> {
  const r = open(t, url, opts);
  await r.b.load();
  r.b.watch((d) => r.seen.push(d));
  return r;
}

/** Until `n` connections listen on the channel (a watch subscribes once connected). */
async function subscribers(n: number, c = admin): Promise<void> {
  await waitFor(async () => Number((await c.pubsub('NUMSUB', CHANGED_CHANNEL))[1]) >= n, `${n} subscribers`, 3000);
}

/** A document at `version` whose traffic tells documents apart. */
function doc(version: number, blue = 100): LiveDoc {
  return {
    version,
    endpoints: { cars: { config: { traffic: { blue, green: 100 - blue } }, base: 'b4se', at: '2026-01-01T00:00:00.000Z', by: 'admin_key:ops' } },
    keys: {},
    audit: [],
  };
}

const last = (r: Replica): LiveDoc | undefined => r.seen.at(-1);

/** The outcome a write's rejection carries (undefined: none). */
const outcome = (e: unknown): unknown => (e instanceof LiveStoreError ? e.outcome : undefined);

/** What the operator is told to run when the stored document is unreadable. */
const RECOVERY = 'redis-cli DEL switchyard:config:doc switchyard:config:version';

test('a write on one replica reaches the other through pub/sub well under a second; the writer is not told its own', async (t) => {
  // A poll too slow to matter: only the message can deliver in time.
  const a = await watching(t, redis.url, { pollMs: 10_000 });
  const b = await watching(t, redis.url, { pollMs: 10_000 });
  await subscribers(2);
  assert.equal(a.b.where, `Redis 127.0.0.1:${new URL(redis.url).port}`);

  const t0 = performance.now();
  assert.deepEqual(await a.b.write(0, doc(1, 90)), { ok: true });
  await waitFor(() => last(b)?.version === 1, 'b to see version 1', 2000);
  const ms = performance.now() - t0;
  assert.ok(ms < 250, `seen after ${ms.toFixed(1)} ms`);
  assert.deepEqual(b.seen, [doc(1, 90)]);

  assert.deepEqual(await b.b.write(1, doc(2, 80)), { ok: true });
  await waitFor(() => last(a)?.version === 2, 'a to see version 2', 2000);
  assert.deepEqual(a.seen, [doc(2, 80)], 'a got b\'s write, never its own');
  assert.deepEqual(b.seen, [doc(1, 90)]);
  assert.equal(await admin.get(VERSION_KEY), '2');
});

test('two writers from the same version: exactly one wins, the other gets the winner\'s document', async (t) => {
  const a = open(t);
  const b = open(t);
  await a.b.write(0, doc(1));
  await Promise.all([a.b.load(), b.b.load()]);
  const [ra, rb] = await Promise.all([a.b.write(1, doc(2, 70)), b.b.write(1, doc(2, 30))]);
  assert.equal([ra, rb].filter((r) => r.ok).length, 1, 'exactly one wins');
  const winner = ra.ok ? doc(2, 70) : doc(2, 30);
  const loser = ra.ok ? rb : ra;
  assert.deepEqual(loser, { ok: false, current: winner });
  assert.deepEqual(await open(t).b.load(), winner);
  assert.equal(await admin.get(VERSION_KEY), '2');
});

test('a change stored without a message (one lost) is picked up by the poll', async (t) => {
  const b = await watching(t);
  await subscribers(1);
  const t0 = performance.now();
  await admin.set(DOC_KEY, JSON.stringify(doc(7, 40)));
  await admin.set(VERSION_KEY, '7');
  await waitFor(() => last(b)?.version === 7, 'the poll to find version 7', 2000);
  const ms = performance.now() - t0;
  assert.ok(ms < 500, `found after ${ms.toFixed(1)} ms (poll every ${FAST.pollMs} ms)`);
  assert.deepEqual(b.seen, [doc(7, 40)]);
});

test('a backend created later loads the current document at once', async (t) => {
  assert.deepEqual(await open(t).b.load(), EMPTY_DOC, 'nothing stored yet');
  await open(t).b.write(0, doc(1, 60));
  const late = open(t);
  assert.deepEqual(await late.b.load(), doc(1, 60));
  assert.deepEqual(await late.b.write(0, doc(1)), { ok: false, current: doc(1, 60) });
});

test('a write that timed out but landed reaches the writer\'s own watchers', async (t) => {
  // A slow poll: the pause must not trip the recycling of connections that stay silent.
  const a = await watching(t, redis.url, { pollMs: 1000, commandTimeoutMs: 100 });
  await subscribers(1);
  await a.b.write(0, doc(1));
  await redis.pause(300);
  const err = await a.b.write(1, doc(2, 20)).then(() => undefined, (e: unknown) => e);
  assert.match((err as Error).message, /cannot write the live document \(timeout\)/);
  assert.equal(outcome(err), 'unknown', 'sent, then silence: it may have landed');
  // Redis runs it when the pause ends: the message tells the writer what it could not.
  await waitFor(() => last(a)?.version === 2, 'the write to land and be delivered', 2000);
  assert.deepEqual(a.seen, [doc(2, 20)]);
});

test('a corrupt document is refused by load and ignored by the watch, one error line, until a valid one is written', async (t) => {
  const a = open(t);
  const b = await watching(t);
  await a.b.write(0, doc(1));
  await subscribers(1);
  await waitFor(() => last(b)?.version === 1, 'b to see version 1', 2000);
  await admin.set(DOC_KEY, '{"version": 2, "note": "QUOTE-ME-NOT"');
  await admin.set(VERSION_KEY, '2');
  const err = await a.b.load().then(() => undefined, (e: unknown) => e as Error);
  assert.ok(err instanceof Error);
  assert.match(err.message, /the stored live document \(switchyard:config:doc, \d+ bytes\) is unreadable/);
  assert.ok(err.message.includes(RECOVERY), 'says how to recover');
  assert.ok(!err.message.includes('QUOTE-ME-NOT'));
  await waitFor(() => b.logs.lines.some((l) => l.msg === 'the live document in Redis is not valid; it is ignored until a valid one is written'), 'the error line', 2000);
  // Several polls and a message later: still one line, nothing delivered.
  await admin.publish(CHANGED_CHANNEL, '2');
  await sleep(4 * FAST.pollMs!);
  assert.equal(b.logs.lines.filter((l) => l.level === 50).length, 1);
  assert.ok(!b.logs.raw.join('\n').includes('QUOTE-ME-NOT'));
  assert.deepEqual(b.seen.map((d) => d.version), [1]);

  assert.deepEqual(await a.b.write(2, doc(3, 50)), { ok: true });
  await waitFor(() => last(b)?.version === 3, 'b to see version 3', 2000);
});

test('Redis stopped: calls reject at once and nothing changes; restarted: the backends work again', async (t) => {
  const r = await startRedis();
  t.after(() => r.stop());
  if (!r.own) return t.skip('REDIS_URL: cannot stop that server');
  const c = new Redis(r.url, { maxRetriesPerRequest: 0, retryStrategy: () => 50, disconnectTimeout: 20 });
  c.on('error', () => {});
  t.after(() => c.disconnect());
  const a = open(t, r.url);
  // No poll within the test: after the restart only the resubscription (and the check
  // that follows it) can bring b along.
  const b = await watching(t, r.url, { pollMs: 10_000 });
  await subscribers(1, c);
  await a.b.write(0, doc(1));
  await a.b.write(1, doc(2));
  await waitFor(() => last(b)?.version === 2, 'b to see version 2', 2000);
  // (Version 1 may have been skipped: the check a message starts reads what is there by then.)
  const before = b.seen.length;

  await r.stop();
  await waitFor(() => a.logs.lines.some((l) => l.msg?.toString().startsWith('live config store unavailable')), 'the outage line', 2000);
  for (const call of [() => a.b.write(2, doc(3)), () => a.b.load()]) {
    const t0 = performance.now();
    const err = await call().then(() => undefined, (e: unknown) => e as Error);
    const ms = performance.now() - t0;
    assert.ok(err instanceof Error, 'rejects');
    assert.match(err.message, new RegExp(`^Redis 127\\.0\\.0\\.1:${new URL(r.url).port}: cannot (write|read) the live document \\(`));
    assert.ok(ms < 50, `rejected in ${ms.toFixed(1)} ms`);
    if (err.message.includes('write')) assert.equal(outcome(err), 'not_stored', 'never sent');
  }
  assert.equal(b.seen.length, before, 'nothing reached the other replica');

  await r.restart();
  await waitFor(() => a.b.load().then(() => true, () => false), 'a to reconnect', 3000);
  // The restarted server is empty (no persistence): the store went back, and the watch follows it.
  await waitFor(() => last(b)?.version === 0, 'b to follow the emptied store', 2000);
  const wentBack = (): Record<string, unknown>[] => b.logs.lines.filter((l) => l.msg?.toString().startsWith('the live document in Redis went back'));
  assert.deepEqual(wentBack().map((l) => [l.from_version, l.to_version]), [[2, 0]]);
  assert.deepEqual(await a.b.write(2, doc(3)), { ok: false, current: EMPTY_DOC } as const);
  assert.deepEqual(await a.b.write(0, doc(1, 10)), { ok: true });
  await waitFor(() => last(b)?.version === 1, 'b to see the new version 1 (resubscribed)', 2000);
  assert.ok(a.logs.lines.some((l) => l.msg === 'live config store recovered'));
  assert.equal(wentBack().length, 1, 'warned once');
});

test('a password in the URL is never in where, an error or a log line', async (t) => {
  const url = `redis://:s3cret-pw@${DEAD_HOST}:${await deadPort()}`;
  const a = open(t, url);
  assert.equal(a.b.where, `Redis ${DEAD_HOST}:${new URL(url).port}`);
  const t0 = performance.now();
  const errors = await Promise.all([a.b.load(), a.b.write(0, doc(1))].map((p) => p.then(() => undefined, (e: unknown) => e as Error)));
  assert.ok(performance.now() - t0 < 1000, 'no waiting beyond the first connection attempt');
  assert.equal(outcome(errors[1]), 'not_stored', 'a refused connection stores nothing');
  for (const err of errors) {
    assert.ok(err instanceof Error);
    assert.ok(err.message.startsWith(`Redis ${DEAD_HOST}:`), err.message);
    assert.ok(!err.message.includes('s3cret'));
    assert.equal(err.cause, undefined, 'no client error attached (an AUTH error would carry the password)');
  }
  assert.ok(a.logs.raw.length > 0, 'the outage is logged');
  assert.ok(!a.logs.raw.join('\n').includes('s3cret'));
});

test('close quits both connections and stops the poll', async (t) => {
  const listed = async (): Promise<number> => ((await admin.client('LIST')) as string).split('\n').filter((l) => / name=switchyard-live/.test(l)).length;
  const a = await watching(t);
  await subscribers(1);
  await waitFor(async () => await listed() === 2, 'a command and a subscriber connection', 2000);
  await a.b.close();
  await waitFor(async () => await listed() === 0, 'both connections gone', 2000);
  await admin.set(DOC_KEY, JSON.stringify(doc(1)));
  await admin.set(VERSION_KEY, '1');
  await admin.publish(CHANGED_CHANNEL, '1');
  await assert.rejects(a.b.load());
  assert.deepEqual(a.seen, []);
});

test('an unreadable stored document: every write is refused with how to recover, until it is removed', async (t) => {
  const a = await watching(t);
  await a.b.write(0, doc(1));
  // Not JSON; JSON that is a document only at the top; a document whose version is not the store's.
  const broken: [string, string, RegExp][] = [
    ['not JSON', '{"version": 2, "note": "QUOTE-ME-NOT"', /the stored live document \(switchyard:config:doc, \d+ bytes\) is unreadable/],
    ['null endpoint', JSON.stringify({ ...doc(2), endpoints: { cars: null }, note: 'QUOTE-ME-NOT' }), /is unreadable/],
    ['bad digest', JSON.stringify({ ...doc(2), keys: { cars: { primary: { digest: 'QUOTE-ME-NOT', replaces: '', at: '', by: '' } } } }), /is unreadable/],
    ['version mismatch', JSON.stringify(doc(5)), /switchyard:config:doc is version 5 while switchyard:config:version is 2/],
  ];
  for (const [what, text, why] of broken) {
    await admin.set(DOC_KEY, text);
    await admin.set(VERSION_KEY, '2');
    // Refused the same way each time. (A write from the version the store names lands, over
    // it: no replica can know that version from a document it cannot read.)
    for (const expected of [1, 0, 1]) {
      const err = await a.b.write(expected, doc(expected + 1)).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof LiveStoreError, `${what}: rejects`);
      assert.match(err.message, why, what);
      assert.ok(err.message.includes(RECOVERY), `${what}: says how to recover`);
      assert.ok(!err.message.includes('QUOTE-ME-NOT'), `${what}: does not quote it`);
      assert.equal(err.outcome, 'not_stored');
    }
  }
  await admin.del(DOC_KEY);
  await assert.rejects(a.b.write(1, doc(2)), (e: Error) => e.message.includes('switchyard:config:doc is missing while switchyard:config:version is 2') && e.message.includes(RECOVERY));
  assert.deepEqual(a.seen, [], 'nothing unreadable was delivered');

  // The recovery, as the message says it.
  await admin.del(DOC_KEY, VERSION_KEY);
  assert.deepEqual(await a.b.write(0, doc(1, 30)), { ok: true });
  assert.deepEqual(await open(t).b.load(), doc(1, 30));
});

test('Redis refusing the write (out of memory) is an outcome of not_stored', async (t) => {
  const a = open(t);
  await a.b.write(0, doc(1));
  const got = await admin.config('GET', 'maxmemory').then((r) => (r as string[])[1], () => undefined);
  if (got === undefined) return t.skip('CONFIG is not allowed on this server');
  const was = got;
  await admin.config('SET', 'maxmemory', '1');
  t.after(() => admin.config('SET', 'maxmemory', was));
  const err = await a.b.write(1, doc(2)).then(() => undefined, (e: unknown) => e);
  await admin.config('SET', 'maxmemory', was);
  assert.ok(err instanceof LiveStoreError, 'rejects');
  assert.match(err.message, /cannot write the live document/);
  assert.equal(err.outcome, 'not_stored');
  assert.equal(await admin.get(VERSION_KEY), '1', 'nothing changed');
});

test('concurrent edits from two replicas: no document is lost and no "went back" warning', async (t) => {
  // Fast polls and both watching: every check has writes of both replicas racing with it.
  const replicas = [await watching(t, redis.url, { pollMs: 5 }), await watching(t, redis.url, { pollMs: 5 })];
  await subscribers(2);
  const N = 30;
  await Promise.all(replicas.map(async (r, n) => {
    let cur = await r.b.load();
    for (let i = 0; i < N; i++) {
      for (;;) {
        const next = { ...cur, version: cur.version + 1, audit: [...cur.audit, { version: cur.version + 1, previous_version: cur.version, at: '', by: `r${n}`, action: 'patch' as const, endpoint: 'cars', old_etag: '', new_etag: '', change: i }] };
        const res = await r.b.write(cur.version, next);
        if (res.ok) {
          cur = next;
          break;
        }
        cur = res.current;
      }
    }
  }));
  const final = await open(t).b.load();
  assert.equal(final.version, 2 * N);
  assert.equal(final.audit.length, 2 * N);
  // A few polls more: a check racing with the last writes has ended by then.
  await sleep(10 * 5);
  for (const r of replicas) {
    const warned = r.logs.lines.filter((l) => l.level === 40);
    assert.deepEqual(warned.map((l) => l.msg), [], 'no warning');
    // Never delivered a document older than one it delivered before.
    const versions = r.seen.map((d) => d.version);
    assert.deepEqual(versions, [...versions].sort((x, y) => x - y), 'deliveries only move forward');
  }
});
