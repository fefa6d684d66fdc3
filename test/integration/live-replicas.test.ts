import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, startUpstream, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor, type Reply } from '../helpers/http.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

// Issue 12's acceptance test: two `switchyard serve` processes sharing one Redis agree on
// the live config. An edit on one is served by the other within 1 s; a replica that was
// down during a change has it when it comes back; two edits made from the same ETag on
// different replicas cannot both land; no secret reaches Redis in clear.

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));
const KEY = 'replicas-live-cars-key';
const ADMIN = 'replicas-live-admin-key';

interface Replica {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  admin(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  /** The deployment that answers a scoring call. */
  deployment(): Promise<string | undefined>;
  /** Status of a scoring call with `key`. */
  score(key: string): Promise<number>;
  /** A metric without labels, from /metrics. */
  metric(name: string): Promise<number>;
}

let dir: string;
let redis: TestRedis;
let blue: TestUpstream;
let green: TestUpstream;
const ports = new Map<string, { pub: number; admin: number }>();
const running: Replica[] = [];

/** What sets a replica apart: its environment, and text added to its `cars` endpoint in its file. */
interface Differences {
  readonly env?: Record<string, string>;
  readonly cars?: string;
  /** Top-level sections added to its file. */
  readonly top?: string;
}

async function serve(name: string, diff: Differences = {}): Promise<Replica> {
  let p = ports.get(name);
  if (!p) ports.set(name, p = { pub: await freePort(), admin: await freePort() });
  const conf = join(dir, `${name}.yaml`);
  // Each replica has its own listeners and the same endpoints (a ConfigMap shared by the pods).
  await writeFile(conf, `
server:
  listen: { host: 127.0.0.1, port: ${p.pub} }
  admin_listen: { host: 127.0.0.1, port: ${p.admin} }
state:
  redis_url: ${redis.url}
admin:
  keys: [${ADMIN}]
logging: { level: warn, access_log: false }${diff.top ?? ''}
endpoints:
  cars:
    keys: { primary: ${KEY} }
    traffic: { blue: 100, green: 0 }${diff.cars ?? ''}
    deployments:
      blue: { instances: [${blue.url}] }
      green: { instances: [${green.url}] }
`);
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', conf, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...diff.env } });
  let out = '';
  const keep = (c: Buffer): void => { out = (out + c.toString()).slice(-20_000); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const adminUrl = `http://127.0.0.1:${p.admin}`;
  const r: Replica = {
    name,
    proc,
    exited,
    metric: async (m) => Number(new RegExp(`^${m} (\\S+)$`, 'm').exec(await fetch(`${adminUrl}/metrics`).then((x) => x.text()))?.[1]),
    score: async (key) => (await call(`http://127.0.0.1:${p.pub}/endpoints/cars/score`, { body: '{}', headers: bearer(key) })).status,
    admin: (method, path, body, headers) => call(`${adminUrl}${path}`, {
      method,
      headers: { ...bearer(ADMIN), ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }),
    deployment: async () => (await call(`http://127.0.0.1:${p.pub}/endpoints/cars/score`, { body: '{}', headers: bearer(KEY) })).headers['azureml-model-deployment'] as string | undefined,
  };
  running.push(r);
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`${name} exited ${proc.exitCode}:\n${out}`);
    return (await fetch(`${adminUrl}/readyz`).then((x) => x.status, () => 0)) === 200;
  }, `${name} ready`, 20_000);
  return r;
}

async function stop(r: Replica): Promise<void> {
  r.proc.kill('SIGTERM');
  await r.exited;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-live-replicas-'));
  redis = await startRedis();
  [blue, green] = await Promise.all([startUpstream('blue'), startUpstream('green')]);
});
after(async () => {
  for (const r of running) if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
  await Promise.all(running.map((r) => r.exited));
  await Promise.all([blue.close(), green.close()]);
  await redis.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Poll `b` until it serves `want`; how long that took after `since`. */
async function servedWithin(b: Replica, want: string, since: number): Promise<number> {
  await waitFor(async () => (await b.deployment()) === want, `${b.name} serves ${want}`, 5000);
  return performance.now() - since;
}

test('two replicas on one Redis: edits reach the other within 1 s, a replica that was down catches up, one of two racing edits wins, no secret in Redis', async () => {
  const a = await serve('a');
  let b = await serve('b');
  assert.equal(await b.deployment(), 'blue');

  // 1. A PATCH on A is served by B within 1 s.
  const t0 = performance.now();
  const patched = await a.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 0, green: 100 } });
  assert.equal(patched.status, 200, patched.body);
  const ms = await servedWithin(b, 'green', t0);
  assert.ok(ms < 1000, `B served the change after ${Math.round(ms)} ms`);
  assert.equal((await b.admin('GET', '/admin/endpoints/cars')).headers.etag, patched.headers.etag, 'both replicas give the same ETag');

  // 2. Invalid edits change nothing, on either replica.
  assert.equal((await b.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 30 } })).status, 400);
  assert.equal(await a.deployment(), 'green');

  // 3. Two edits from the same ETag on different replicas: exactly one lands.
  const etag = (await a.admin('GET', '/admin/endpoints/cars')).headers.etag as string;
  const race = await Promise.all([
    a.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 100, green: 0 } }, { 'if-match': etag }),
    b.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 50, green: 50 } }, { 'if-match': etag }),
  ]);
  assert.deepEqual(race.map((x) => x.status).sort(), [200, 412], race.map((x) => x.body).join('\n'));

  // 4. B is down during a change; when it comes back it serves the change.
  await stop(b);
  assert.equal((await a.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 0, green: 100 } })).status, 200);
  b = await serve('b');
  assert.equal(await b.deployment(), 'green', 'a replica that starts reads the current document');
  const audits = (await b.admin('GET', '/admin/audit')).json<{ entries: { by: string }[] }>().entries;
  assert.ok(audits.length >= 3 && audits.every((e) => e.by === 'admin_key:admin-key-1'), 'the audit is shared');

  // 5. A regenerated key works on the other replica; nothing in Redis holds a key in clear.
  const regen = await a.admin('POST', '/admin/endpoints/cars/keys/regenerate', { key_type: 'secondary' });
  assert.equal(regen.status, 200, regen.body);
  const newKey = regen.json<{ key: string }>().key;
  await waitFor(async () => (await call(`http://127.0.0.1:${ports.get('b')!.pub}/endpoints/cars/score`, { body: '{}', headers: bearer(newKey) })).status === 200, 'B accepts the regenerated key', 2000);
  const c = new Redis(redis.url);
  try {
    const dump: string[] = [];
    for (const k of await c.keys('*')) {
      const type = await c.type(k);
      if (type === 'string') dump.push(k, (await c.get(k)) ?? '');
      else if (type === 'zset') dump.push(k, ...(await c.zrange(k, 0, -1)));
      else dump.push(k);
    }
    const all = dump.join('\n');
    assert.ok(all.includes('switchyard:config'), 'the live document is in Redis');
    for (const secret of [KEY, ADMIN, newKey]) assert.ok(!all.includes(secret), 'no key in clear in Redis');
  } finally {
    c.disconnect();
  }

  // 6. The store out of reach: an edit gets 503 and changes nothing; serving goes on.
  if (redis.own) {
    await redis.stop();
    const refused = await a.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 100, green: 0 } });
    assert.equal(refused.status, 503, refused.body);
    assert.equal(refused.json<{ error: { code: string } }>().error.code, 'LiveStoreUnavailable');
    assert.ok(!refused.body.includes(redis.url), 'the message does not name the URL (it may hold a password)');
    assert.equal(await a.deployment(), 'green');
    assert.equal(await b.deployment(), 'green');
    // A replica that starts while Redis is out serves the last edits it kept, keys included.
    await stop(b);
    b = await serve('b');
    assert.equal(await b.deployment(), 'green', 'the local copy of the edits serves');
    assert.equal(await b.score(newKey), 200, 'and the regenerated key with them');
  }
  // These replicas would write their edits back into the next test's empty Redis.
  await Promise.all([stop(a), stop(b)]);
});

test('replicas that differ: a document that does not validate on one still revokes keys there and is never pruned by it; a file that differs keeps the others\' edits', async () => {
  await redis.restart();
  // Only a2's file trusts an Entra tenant: an endpoint that takes tokens cannot validate on b2.
  const a = await serve('a2', { top: '\nentra: { tenants: [11111111-1111-1111-1111-111111111111], audiences: [api://switchyard] }' });
  // b2's `cars` differs from a2's by a default written out: the same meaning, another text.
  let b = await serve('b2', { cars: '\n    mirror_max_in_flight: 100' });
  const trucks = { auth_mode: 'key_or_aad_token', keys: { primary: 'trucks-key-0000000001' }, traffic: { blue: 100 }, deployments: { blue: { instances: [blue.url] } } };
  assert.equal((await a.admin('PUT', '/admin/endpoints/trucks', trucks)).status, 201);
  await waitFor(async () => (await b.metric('switchyard_live_config_in_step')) === 0, 'b2 says it is out of step');
  assert.equal(await b.metric('switchyard_live_config_version'), 0, 'b2 serves the last document that validated there');

  // A key regenerated on a2 is revoked on b2 too, although b2 cannot apply the document's endpoints.
  const regen = await a.admin('POST', '/admin/endpoints/cars/keys/regenerate', { key_type: 'primary' });
  assert.equal(regen.status, 200, regen.body);
  const carsKey = regen.json<{ key: string }>().key;
  await waitFor(async () => (await b.score(KEY)) === 401, 'the old key is refused on b2');
  assert.equal(await b.score(carsKey), 200);

  // a2's edit of `cars` stands although b2's file text differs: b2 ignores it, it does not erase it.
  assert.equal((await a.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 0, green: 100 } })).status, 200);
  const trucksKey = await a.admin('POST', '/admin/endpoints/trucks/keys/regenerate', { key_type: 'primary' });
  assert.equal(trucksKey.status, 200);
  await stop(b);
  b = await serve('b2', { cars: '\n    mirror_max_in_flight: 100' });
  await sleep(700); // past the version poll of both replicas: a prune would have landed
  const cars = await call(`http://127.0.0.1:${ports.get('a2')!.pub}/endpoints/cars/score`, { body: '{}', headers: bearer(carsKey) });
  assert.equal(cars.headers['azureml-model-deployment'], 'green', 'a2\'s edit stands');
  const audit = (await a.admin('GET', '/admin/audit')).json<{ entries: { action: string }[] }>().entries;
  assert.ok(!audit.some((e) => e.action === 'superseded_by_file'), 'no replica dropped another\'s edits');
  const url = `http://127.0.0.1:${ports.get('a2')!.pub}/endpoints/trucks/score`;
  assert.equal((await call(url, { body: '{}', headers: bearer(trucksKey.json<{ key: string }>().key) })).status, 200, 'the trucks key regenerated on a2 still works');

  // Redis comes back empty (no persistence): the replicas write back what they had, and the
  // revoked key stays revoked.
  if (redis.own) {
    await redis.restart();
    const c = new Redis(redis.url);
    try {
      await waitFor(async () => (await c.get('switchyard:config:version')) !== null, 'a replica wrote the edits back', 10_000);
    } finally {
      c.disconnect();
    }
    assert.equal(await b.score(KEY), 401, 'the old cars key stays revoked on b2');
    assert.equal(await b.score(carsKey), 200);
    const again = await call(`http://127.0.0.1:${ports.get('a2')!.pub}/endpoints/cars/score`, { body: '{}', headers: bearer(carsKey) });
    assert.equal(again.headers['azureml-model-deployment'], 'green', 'a2\'s edit stands');
  }
});
