import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { bodyMemory } from '../../gateway/upstream/body.ts';
import { startGateway, startUpstream, type TestGateway } from '../helpers/gateway.ts';
import { call, waitFor } from '../helpers/http.ts';

// Issue 7 item 2: slow uploads must not starve a model. Real slow clients, bounded in time.

const KEY = 'slow-clients-key';

async function setup(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void, server: Record<string, unknown> = {}): Promise<{ gw: TestGateway; stats: { inFlight: number; max: number; seen: number } }> {
  const stats = { inFlight: 0, max: 0, seen: 0 };
  const up = await startUpstream('m', (req, res) => {
    stats.seen++;
    stats.max = Math.max(stats.max, ++stats.inFlight);
    res.on('close', () => stats.inFlight--);
    handler(req, res);
  }, true);
  const gw = await startGateway({
    server,
    // The concurrency cap is lifted: these tests are about connections, not the model's queue.
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url], request_settings: { max_concurrent_requests_per_instance: 1000 } } } } },
  });
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  return { gw, stats };
}

function open(gw: TestGateway): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect(Number(new URL(gw.url).port), '127.0.0.1', () => resolve(s));
    s.on('error', () => {});
  });
}

/** The private spool directory the gateway made under `root`. */
async function spoolDirIn(root: string): Promise<string> {
  const [name] = (await readdir(root)).filter((n) => n.startsWith('switchyard-spool-'));
  assert.ok(name, 'a spool directory');
  return join(root, name);
}

/** Spool files under `root` (in the gateway's private directory there). */
async function spooled(root: string): Promise<string[]> {
  const dirs = (await readdir(root).catch(() => [])).filter((n) => n.startsWith('switchyard-spool-'));
  const out: string[] = [];
  for (const d of dirs) out.push(...(await readdir(join(root, d)).catch(() => [])));
  return out;
}

/** An instance that answers `/big` with `big` and anything else with `ok`. */
function bigOrOk(big: Buffer): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    req.on('end', () => res.end(req.url?.includes('big') ? big : 'ok'));
  };
}

const echo = (req: IncomingMessage, res: ServerResponse): void => {
  req.resume();
  req.on('end', () => res.end('ok'));
};

test('300 stalled uploads hold no instance connection: other requests on the instance answer 200', { timeout: 30_000 }, async (t) => {
  const { gw, stats } = await setup(t, echo);
  const slow: Socket[] = [];
  for (let i = 0; i < 300; i++) {
    const s = await open(gw);
    s.write(`POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 1000000\r\n\r\nx`);
    slow.push(s);
  }
  t.after(() => { for (const s of slow) s.destroy(); });
  const replies = await Promise.all(Array.from({ length: 20 }, () =>
    call(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: '{"x":1}' })));
  assert.deepEqual(replies.map((r) => r.status), Array(20).fill(200));
  assert.equal(stats.seen, 20, 'the stalled uploads never reached the instance');
});

test('pipelined requests on one connection reach the instance one at a time', { timeout: 15_000 }, async (t) => {
  const { gw, stats } = await setup(t, (req, res) => {
    req.resume();
    req.on('end', () => setTimeout(() => res.end('ok'), 2));
  });
  const s = await open(gw);
  let got = '';
  s.on('data', (d: Buffer) => { got += d.toString(); });
  const n = 50;
  s.write(`GET /endpoints/cars/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`.repeat(n));
  await waitFor(() => (got.match(/HTTP\/1\.1 200 OK/g) ?? []).length === n, `${n} responses`);
  assert.equal(stats.seen, n);
  assert.equal(stats.max, 1, 'never more than one request of the connection in flight upstream');
  s.destroy();
});

test('headers not complete within client_header_timeout_ms get 408', { timeout: 15_000 }, async (t) => {
  const { gw } = await setup(t, echo, { client_header_timeout_ms: 200 });
  const s = await open(gw);
  let got = '';
  s.on('data', (d: Buffer) => { got += d.toString(); });
  const closed = new Promise((r) => s.once('close', r));
  s.write('GET /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n');
  await closed;
  assert.match(got, /^HTTP\/1\.1 408 /);
});

test('uploads over request_buffering_bytes are spooled: 100 stalled 2 MB uploads hold no instance connection, and the spool is cleaned', { timeout: 30_000 }, async (t) => {
  const spoolRoot = await mkdtemp(join(tmpdir(), 'switchyard-spool-test-'));
  t.after(() => rm(spoolRoot, { recursive: true, force: true }));
  const { gw, stats } = await setup(t, echo, { request_spool_dir: spoolRoot });
  const slow: Socket[] = [];
  for (let i = 0; i < 100; i++) {
    const s = await open(gw);
    s.write(`POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 2000000\r\n\r\n${'x'.repeat(1000)}`);
    slow.push(s);
  }
  await waitFor(async () => (await spooled(spoolRoot)).length === 100, '100 bodies spooled');
  const dir = await spoolDirIn(spoolRoot);
  assert.equal((await stat(dir)).mode & 0o777, 0o700, 'a private directory, made with mkdtemp');
  const files = await readdir(dir);
  assert.equal(files.length, 100);
  assert.equal((await stat(join(dir, files[0]!))).mode & 0o777, 0o600, 'files only the gateway can read');
  const replies = await Promise.all(Array.from({ length: 20 }, () =>
    call(`${gw.url}/endpoints/cars/score`, { headers: { authorization: `Bearer ${KEY}` }, body: '{"x":1}' })));
  assert.deepEqual(replies.map((r) => r.status), Array(20).fill(200));
  assert.equal(stats.seen, 20, 'the stalled uploads never reached the instance');
  for (const s of slow) s.destroy();
  await waitFor(async () => (await spooled(spoolRoot)).length === 0, 'spool files removed once their exchanges ended');
});

test('a spooled upload reaches the instance whole, once complete, with a Content-Length even when sent chunked', { timeout: 15_000 }, async (t) => {
  const spoolRoot = await mkdtemp(join(tmpdir(), 'switchyard-spool-test-'));
  t.after(() => rm(spoolRoot, { recursive: true, force: true }));
  let seen: { cl: string | undefined; body: Buffer } | undefined;
  const { gw } = await setup(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen = { cl: req.headers['content-length'], body: Buffer.concat(chunks) };
      res.end('ok');
    });
  }, { request_spool_dir: spoolRoot, request_buffering_bytes: 1024 });
  const body = randomBytes(300_000);
  const r = await call(`${gw.url}/endpoints/cars/score`, { headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/octet-stream' }, body });
  assert.equal(r.status, 200);
  assert.equal(seen?.cl, String(body.length));
  assert.ok(seen.body.equals(body), 'every byte, in order');
  // Chunked: spooled whole, so the instance gets a length.
  seen = undefined;
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write(body.subarray(0, 100_000));
    req.end(body.subarray(100_000));
  });
  assert.equal(chunked, 200);
  const again = seen as { cl: string | undefined; body: Buffer } | undefined;
  assert.equal(again?.cl, String(body.length));
  assert.ok(again.body.equals(body));
  await waitFor(async () => (await spooled(spoolRoot)).length === 0, 'the spool files removed');
});

test('request_buffering_memory_bytes bounds what stalled bodies hold in memory; past it they go to the spool', { timeout: 15_000 }, async (t) => {
  const spoolRoot = await mkdtemp(join(tmpdir(), 'switchyard-spool-test-'));
  t.after(() => rm(spoolRoot, { recursive: true, force: true }));
  const { gw } = await setup(t, echo, { request_spool_dir: spoolRoot, request_buffering_memory_bytes: 200_000 });
  const slow: Socket[] = [];
  for (let i = 0; i < 10; i++) {
    const s = await open(gw);
    s.write(`POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 90000\r\n\r\n${'x'.repeat(80_000)}`);
    slow.push(s);
  }
  t.after(() => { for (const s of slow) s.destroy(); });
  await waitFor(async () => (await spooled(spoolRoot)).length === 8, 'the bodies memory could not take went to the spool');
  assert.ok(bodyMemory.used <= 200_000, `memory held by bodies being read: ${bodyMemory.used}`);
  assert.equal(bodyMemory.used, 180_000, 'two bodies in memory');
});

test('a client that reads nothing of its response for client_send_timeout_ms is cut (499 client_aborted); others are served', { timeout: 20_000 }, async (t) => {
  const big = Buffer.alloc(8 * 1024 * 1024, 7);
  const { gw } = await setup(t, bigOrOk(big), { client_send_timeout_ms: 300 });
  const s = await open(gw);
  s.pause();
  s.write(`GET /endpoints/cars/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
  const ok = await call(`${gw.url}/endpoints/cars/score`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(ok.status, 200);
  await waitFor(() => gw.logs.access().some((l) => l.path === '/endpoints/cars/big'), 'the slow reader cut');
  const line = gw.logs.access().find((l) => l.path === '/endpoints/cars/big')!;
  assert.equal(line.status, 499);
  assert.equal(line.termination, 'client_aborted');
  s.destroy();
});

test('slow readers may hold at most half of an instance\'s connections: past that they are cut and others are served', { timeout: 30_000 }, async (t) => {
  // Bigger than loopback socket buffers can absorb, so a client that never reads stalls.
  const big = Buffer.alloc(16 * 1024 * 1024, 7);
  const { gw } = await setup(t, bigOrOk(big));
  const slow: Socket[] = [];
  for (let i = 0; i < 140; i++) {
    const s = await open(gw);
    s.pause();
    s.write(`GET /endpoints/cars/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
    slow.push(s);
  }
  t.after(() => { for (const s of slow) s.destroy(); });
  await waitFor(() => gw.logs.access().filter((l) => l.path === '/endpoints/cars/big' && l.termination !== 'completed').length >= 12, 'the readers past the cap cut');
  // A client that reads (with the moments of backpressure any big download has) is not a stalled reader.
  const reader = await call(`${gw.url}/endpoints/cars/big`, { headers: { authorization: `Bearer ${KEY}` } });
  assert.equal(reader.status, 200);
  assert.equal(reader.body.length, big.length, 'the whole download, while the quota of stalled readers is full');
  // Some never-reading clients get their whole answer into socket buffers and complete.
  const cut = gw.logs.access().filter((l) => l.path === '/endpoints/cars/big' && l.termination !== 'completed');
  assert.ok(cut.length >= 12);
  assert.ok(cut.every((l) => l.status === 499 && l.termination === 'client_aborted'), JSON.stringify(cut.filter((l) => l.status !== 499 || l.termination !== 'client_aborted').slice(0, 2)));
  const replies = await Promise.all(Array.from({ length: 20 }, () => call(`${gw.url}/endpoints/cars/score`, { headers: { authorization: `Bearer ${KEY}` } })));
  assert.deepEqual(replies.map((r) => r.status), Array(20).fill(200));
});
