import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'undici';
import { freePort, startUpstream, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor, type Reply } from '../helpers/http.ts';
import { Served } from '../helpers/served.ts';

// `switchyard serve --workers 2` as a real process tree: both workers take connections
// (the kernel spreads them: reusePort), /metrics on either adds both up, an admin edit
// made through one is applied by the other, a killed worker is replaced without the sum
// going down, SIGHUP reaches every worker, SIGTERM drains every worker and exits 0. Their
// shared log through a full pipe, and when nobody reads it: workers-log.test.ts.

const KEY = 'workers-test-key-0123456789';
const ADMIN = 'workers-admin-key-0123456789';
/** Requests sent each on a connection of its own: with two workers, all on one would be a 2^-(n-1) fluke. */
const SPREAD = 24;

let dir: string;
let blue: TestUpstream;
let green: TestUpstream;
const held: (() => void)[] = [];

/** /hold answers only when the test says so (or after 10 s, so nothing hangs forever). */
function holding(name: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ deployment: name, url: req.url }));
    };
    if (req.url !== '/hold') return answer();
    const timer = setTimeout(answer, 10_000);
    held.push(() => { clearTimeout(timer); answer(); });
  };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-workers-'));
  [blue, green] = await Promise.all([startUpstream('blue', holding('blue')), startUpstream('green', holding('green'))]);
});
after(async () => {
  await Promise.all([blue.close(), green.close()]);
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string): Promise<{ file: string; url: string; adminUrl: string }> {
  const pub = await freePort();
  const admin = await freePort();
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, `
server:
  listen: { host: 127.0.0.1, port: ${pub} }
  admin_listen: { host: 127.0.0.1, port: ${admin} }
  shutdown_grace_ms: 20000
admin: { keys: [${ADMIN}] }
endpoints:
  cars:
    keys: { primary: ${KEY} }
    traffic: { blue: 100, green: 0 }
    deployments:
      blue: { instances: [${blue.url}], request_settings: { max_concurrent_requests_per_instance: 100, request_timeout_ms: 30000 } }
      green: { instances: [${green.url}], request_settings: { max_concurrent_requests_per_instance: 100, request_timeout_ms: 30000 } }
`);
  return { file, url: `http://127.0.0.1:${pub}`, adminUrl: `http://127.0.0.1:${admin}` };
}

/** Which worker answers `/readyz` on a fresh connection. */
async function readyPid(adminUrl: string): Promise<number | undefined> {
  const r = await call(`${adminUrl}/readyz`).catch(() => undefined);
  return r?.status === 200 ? r.json<{ pid: number }>().pid : undefined;
}

/** The worker pids seen answering `/readyz` over `n` fresh connections. */
async function readyPids(adminUrl: string, n = SPREAD): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < n; i++) {
    const pid = await readyPid(adminUrl);
    if (pid !== undefined) pids.add(pid);
  }
  return pids;
}

/** A sample's total over every label set, from the Prometheus text. */
function total(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

async function metrics(adminUrl: string): Promise<string> {
  const r = await call(`${adminUrl}/metrics`);
  assert.equal(r.status, 200, r.body);
  return r.body;
}

function score(url: string, key = KEY, path = '/endpoints/cars/score'): Promise<Reply> {
  return call(`${url}${path}`, { headers: bearer(key), body: '{}' });
}

describe('serve --workers 2', () => {
  let s: Served;
  let at: Awaited<ReturnType<typeof configFile>>;
  /** Invocations sent so far (every one answered 200). */
  let sent = 0;
  before(async () => {
    at = await configFile('two');
    s = new Served(at.file, 2);
    await s.line((l) => l.msg === 'switchyard workers ready', 'both workers ready');
  });
  after(() => s.stop());

  test('both workers take connections, and /metrics on either adds both up', async () => {
    const pids = (s.find('switchyard workers ready')[0]!.worker_pids as number[]);
    assert.equal(new Set(pids).size, 2);
    assert.deepEqual([...await readyPids(at.adminUrl)].sort(), [...pids].sort(), 'both workers answer on the shared admin port');

    for (let i = 0; i < SPREAD; i++) assert.equal((await score(at.url)).status, 200);
    sent += SPREAD;
    // Both workers' access lines, each written by its worker to the stdout they share.
    await waitFor(() => s.find('request').length === sent, 'every access line');
    assert.deepEqual(s.broken, []);
    const servedBy = new Set(s.find('request').map((l) => l.pid));
    assert.deepEqual([...servedBy].sort(), [...pids].sort(), 'both workers served invocations');

    // Each scrape (on a fresh connection: either worker) reads every worker's count.
    for (let i = 0; i < 6; i++) {
      const text = await metrics(at.adminUrl);
      assert.equal(total(text, 'switchyard_requests_total'), sent, text);
      assert.match(text, /^switchyard_workers 2$/m);
      // A gauge that is 1 in each worker stays 1 (min), not 2 (a sum).
      assert.match(text, /^switchyard_instance_ready\{endpoint="cars",deployment="blue",instance="[^"]+"\} 1$/m);
    }
  });

  test('an admin edit made through one worker is applied by the other; so is a regenerated key', async () => {
    // One connection: the worker that answers its /readyz is the one that takes the PATCH.
    const one = new Client(at.adminUrl, { pipelining: 0 });
    try {
      const ready = await one.request({ path: '/readyz', method: 'GET' });
      const writer = ((await ready.body.json()) as { pid: number }).pid;
      const patched = await one.request({
        path: '/admin/endpoints/cars', method: 'PATCH',
        headers: { ...bearer(ADMIN), 'content-type': 'application/json' },
        body: JSON.stringify({ traffic: { blue: 0, green: 100 } }),
      });
      assert.equal(patched.statusCode, 200, await patched.body.text());
      await patched.body.dump();

      // The other worker, on connections of its own, shows and routes the new split.
      const other = async (): Promise<{ pid: number; traffic: unknown; docVersion: unknown }> => {
        for (;;) {
          const c = new Client(at.adminUrl);
          try {
            const r = await c.request({ path: '/readyz', method: 'GET' });
            const pid = ((await r.body.json()) as { pid: number }).pid;
            if (pid === writer) continue;
            const v = await c.request({ path: '/admin/endpoints', method: 'GET', headers: bearer(ADMIN) });
            const body = (await v.body.json()) as { doc_version: unknown; endpoints: { name: string; config: { traffic: unknown } }[] };
            return { pid, traffic: body.endpoints.find((e) => e.name === 'cars')?.config.traffic, docVersion: body.doc_version };
          } finally {
            await c.close();
          }
        }
      };
      let seen = await other();
      await waitFor(async () => {
        seen = await other();
        return JSON.stringify(seen.traffic) === JSON.stringify({ blue: 0, green: 100 });
      }, 'the other worker to apply the edit', 5_000);
      assert.notEqual(seen.pid, writer);
      assert.equal(seen.docVersion, 1);

      const from = s.lines.length;
      const deployments = new Set<string>();
      for (let i = 0; i < SPREAD; i++) deployments.add((await score(at.url)).json<{ deployment: string }>().deployment);
      sent += SPREAD;
      assert.deepEqual([...deployments], ['green']);

      const regen = await one.request({
        path: '/admin/endpoints/cars/keys/regenerate', method: 'POST',
        headers: { ...bearer(ADMIN), 'content-type': 'application/json' }, body: JSON.stringify({ key_type: 'secondary' }),
      });
      assert.equal(regen.statusCode, 200);
      const { key } = (await regen.body.json()) as { key: string };
      await waitFor(async () => (await other()).docVersion === 2, 'the other worker to apply the key', 5_000);
      // On every connection, whichever worker takes it.
      for (let i = 0; i < SPREAD; i++) assert.equal((await score(at.url, key)).status, 200);
      sent += SPREAD;
      await waitFor(() => s.find('request', from).filter((l) => l.caller === 'secondary').length === SPREAD, 'the access lines');
      const byKey = new Set(s.find('request', from).filter((l) => l.caller === 'secondary' && l.status === 200).map((l) => l.pid));
      assert.equal(byKey.size, 2, 'both workers accepted the regenerated key');
    } finally {
      await one.close();
    }
  });

  test('edits made at once through both workers all land, one after another, and the workers agree', async () => {
    const view = async (): Promise<{ pid: number; docVersion: number; traffic: unknown }> => {
      const c = new Client(at.adminUrl);
      try {
        const pid = ((await (await c.request({ path: '/readyz', method: 'GET' })).body.json()) as { pid: number }).pid;
        const r = await c.request({ path: '/admin/endpoints', method: 'GET', headers: bearer(ADMIN) });
        const body = (await r.body.json()) as { doc_version: number; endpoints: { name: string; config: { traffic: unknown } }[] };
        return { pid, docVersion: body.doc_version, traffic: body.endpoints.find((e) => e.name === 'cars')?.config.traffic };
      } finally {
        await c.close();
      }
    };
    const start = (await view()).docVersion;
    // Ten splits, none the one in force (an edit that changes nothing stores nothing).
    const edits = await Promise.all(Array.from({ length: 10 }, (_, i) => call(`${at.adminUrl}/admin/endpoints/cars`, {
      method: 'PATCH', headers: bearer(ADMIN),
      body: JSON.stringify({ traffic: { blue: 5 + i * 10, green: 95 - i * 10 } }),
    })));
    for (const r of edits) assert.equal(r.status, 200, r.body);
    const seen = new Map<number, { docVersion: number; traffic: unknown }>();
    const atLast = async (): Promise<boolean> => {
      const v = await view();
      seen.set(v.pid, v);
      return seen.size === 2 && [...seen.values()].every((x) => x.docVersion === start + 10);
    };
    await waitFor(atLast, 'both workers at the last edit', 5_000).catch((err: Error) => {
      throw new Error(`${err.message} (from version ${start}): ${JSON.stringify([...seen.entries()])}`);
    });
    const [a, b] = [...seen.values()];
    assert.deepEqual(a!.traffic, b!.traffic);
  });

  test('SIGHUP reaches every worker (each reloads its file)', async () => {
    const pids = await readyPids(at.adminUrl);
    const from = s.lines.length;
    s.proc.kill('SIGHUP');
    await waitFor(() => new Set(s.find('config reloaded', from).map((l) => l.pid)).size === pids.size, 'every worker to reload');
    assert.deepEqual([...new Set(s.find('config reloaded', from).map((l) => l.pid))].sort(), [...pids].sort());
  });

  test('a worker that dies is replaced, and the aggregate does not go down', async () => {
    const before = total(await metrics(at.adminUrl), 'switchyard_requests_total');
    assert.equal(before, sent);
    const pids = await readyPids(at.adminUrl);
    assert.equal(pids.size, 2);
    const victim = [...pids][0]!;
    process.kill(victim, 'SIGKILL');

    const exitLine = await s.line((l) => l.msg === 'worker exited; restarting it', 'the restart to be logged');
    assert.equal(exitLine.worker_pid, victim);
    assert.equal(exitLine.signal, 'SIGKILL');
    let now = new Set<number>();
    await waitFor(async () => {
      now = await readyPids(at.adminUrl, 8);
      return now.size === 2 && !now.has(victim);
    }, 'a new worker in its place', 15_000);

    const text = await metrics(at.adminUrl);
    assert.match(text, /^switchyard_worker_restarts_total 1$/m);
    // The dead worker's counts stay in the sum (a drop would read as a counter reset).
    assert.equal(total(text, 'switchyard_requests_total'), sent);
    for (let i = 0; i < 4; i++) assert.equal((await score(at.url)).status, 200);
    sent += 4;
    assert.equal(total(await metrics(at.adminUrl), 'switchyard_requests_total'), sent);
  });

  test('SIGTERM: every worker drains its in-flight requests, then the primary exits 0', async () => {
    const workers = await readyPids(at.adminUrl);
    const from = s.lines.length;
    const inFlight = Array.from({ length: SPREAD }, () => score(at.url, KEY, '/endpoints/cars/hold'));
    await waitFor(() => held.length === SPREAD, 'the requests to reach the instance');

    s.proc.kill('SIGTERM');
    // Every worker stops being ready (a fresh connection reaches either).
    await waitFor(async () => (await readyPids(at.adminUrl, 8)).size === 0, 'readyz to stop answering 200 on every worker');
    await sleep(300);
    assert.ok(s.running, 'still draining while requests are in flight');
    for (const release of held.splice(0)) release();

    for (const r of await Promise.all(inFlight)) assert.equal(r.status, 200);
    const { code, signal } = await s.exited;
    assert.equal(signal, null);
    assert.equal(code, 0, s.stderr);
    const drained = new Set(s.find('request', from).filter((l) => l.path === '/endpoints/cars/hold' && l.status === 200).map((l) => l.pid));
    assert.deepEqual([...drained].sort(), [...workers].sort(), 'both workers finished requests they held');
    assert.ok(s.find('every worker has exited', from).length === 1);
  });
});

test('a start that fails in the workers is said once, and the primary exits with its code', async () => {
  const at = await configFile('corrupt');
  await writeFile(join(dir, '.corrupt.yaml.state.json'), '{not json');
  const s = new Served(at.file, 2);
  try {
    const { code } = await s.exited;
    assert.equal(code, 1, s.stderr);
    const said = s.stderr.match(/cannot start: .*not valid JSON/g) ?? [];
    assert.equal(said.length, 1, s.stderr);
  } finally {
    await s.stop();
  }
});
