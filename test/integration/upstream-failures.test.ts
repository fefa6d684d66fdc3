import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { test, type TestContext } from 'node:test';
import { deadOrigin, startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, call, rawExchange } from '../helpers/http.ts';

const KEY = 'failures-test-key';
const AUTH = { authorization: `Bearer ${KEY}` };

interface Setup {
  gw: TestGateway;
  port: number;
}

/**
 * A gateway with endpoint `cars`, one deployment `blue` on `instances`. `random` is fixed
 * to 0, so with two idle instances the first listed is always tried first.
 */
async function setup(t: TestContext, instances: string[], extra: { server?: object; request_settings?: object } = {}): Promise<Setup> {
  const gw = await startGateway({
    server: extra.server ?? {},
    endpoints: {
      cars: {
        keys: { primary: KEY },
        traffic: { blue: 100 },
        deployments: { blue: { instances, request_settings: extra.request_settings ?? {} } },
      },
    },
  }, { random: () => 0 });
  t.after(() => gw.close());
  return { gw, port: Number(new URL(gw.url).port) };
}

async function upstream(t: TestContext, name: string, handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void, raw = false): Promise<TestUpstream> {
  const up = await startUpstream(name, handler, raw);
  t.after(() => up.close());
  return up;
}

test('request_timeout_ms: an upstream that never answers gets 504 GatewayTimeout', { timeout: 15_000 }, async (t) => {
  const silent = await upstream(t, 'silent', () => {});
  const { gw } = await setup(t, [silent.url], { request_settings: { request_timeout_ms: 200 } });
  const r = await call(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: AUTH, body: '{}' });
  assertGatewayError(r, 504, 'GatewayTimeout');
  assert.equal(r.headers['azureml-model-deployment'], 'blue', 'the deployment was chosen, so the header is set');
  assert.equal(silent.seen.length, 1);
});

test('request_timeout_ms also bounds the silence between body chunks: the stream is cut', { timeout: 15_000 }, async (t) => {
  const up = await upstream(t, 'stall', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    // ...then silence.
  }, true);
  const { gw } = await setup(t, [up.url], { request_settings: { request_timeout_ms: 200 } });
  const outcome = await new Promise<{ status: number; body: string; complete: boolean }>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/cars/stream`, { headers: AUTH, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('close', () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }));
    });
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual(outcome, { status: 200, body: 'partial', complete: false });
});

test('time spent uploading or not reading is not counted against request_timeout_ms', { timeout: 15_000 }, async (t) => {
  const payload = Buffer.alloc(32 * 1024 * 1024, 7); // more than loopback socket buffers hold
  const up = await upstream(t, 'echo', (_req, res, body) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upload-length': String(body.length) });
    res.end(payload);
  });
  const { gw } = await setup(t, [up.url], { request_settings: { request_timeout_ms: 200 } });
  const r = await new Promise<{ status: number; uploaded: string | undefined; length: number }>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: AUTH, agent: false }, (res) => {
      // Do not read for a while: the gateway must pause the upstream, not time it out.
      res.pause();
      setTimeout(() => {
        let length = 0;
        res.on('data', (c: Buffer) => { length += c.length; });
        res.on('close', () => resolve({ status: res.statusCode ?? 0, uploaded: res.headers['x-upload-length'] as string | undefined, length }));
        res.resume();
      }, 500);
    });
    req.on('error', reject);
    // A slow chunked upload that lasts longer than the timeout.
    req.write('a'.repeat(100));
    setTimeout(() => req.end('b'.repeat(100)), 500);
  });
  assert.deepEqual(r, { status: 200, uploaded: '200', length: payload.length });
});

test('connection refused by the only instance is 502 BadGateway', async (t) => {
  const { gw } = await setup(t, [await deadOrigin()]);
  const r = await call(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: AUTH, body: '{}' });
  assertGatewayError(r, 502, 'BadGateway');
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
});

test('a refused connection is retried on the other instance: every request succeeds', async (t) => {
  const good = await upstream(t, 'good');
  // The dead port is listed first and random() is 0, so every request tries it first.
  const { gw } = await setup(t, [await deadOrigin(), good.url]);
  for (let i = 0; i < 20; i++) {
    const r = await call(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: `{"i":${i}}` });
    assert.equal(r.status, 200, `request ${i}: ${r.body}`);
  }
  // A chunked upload (no Content-Length) is retried whole too.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: AUTH, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write('{"chunked":');
    setImmediate(() => req.end('true}'));
  });
  assert.equal(chunked, 200);
  assert.equal(good.seen.length, 21);
  // POST bodies survive the retry: nothing was read from them before the connect failed.
  assert.deepEqual(good.seen.map((s) => s.body), [...Array.from({ length: 20 }, (_, i) => `{"i":${i}}`), '{"chunked":true}']);
});

test("an instance's own error status passes through unchanged and is not retried", async (t) => {
  const failing = await upstream(t, 'failing', (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '7' });
    res.end('{"detail":"model warming up"}');
  });
  const healthy = await upstream(t, 'healthy');
  const { gw } = await setup(t, [failing.url, healthy.url]);
  const r = await call(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: AUTH, body: '{}' });
  assert.equal(r.status, 503);
  assert.equal(r.body, '{"detail":"model warming up"}');
  assert.equal(r.headers['retry-after'], '7');
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  assert.equal(healthy.seen.length, 0);
});

test('a POST whose instance resets the connection after reading it is 502 and not retried', async (t) => {
  const resetter = await upstream(t, 'resetter', (_req, res) => res.socket?.destroy());
  const healthy = await upstream(t, 'healthy');
  // The resetter is tried first; a retry would land on `healthy` and be counted there.
  const { gw } = await setup(t, [resetter.url, healthy.url]);
  for (let i = 0; i < 3; i++) {
    const r = await call(`${gw.url}/endpoints/cars/score`, { method: 'POST', headers: AUTH, body: `{"i":${i}}` });
    assertGatewayError(r, 502, 'BadGateway');
  }
  assert.equal(resetter.seen.length, 3, 'the resetting instance read each request');
  assert.equal(healthy.seen.length, 0, 'a request that reached an instance is never replayed');
});

test('Content-Length over max_body_bytes is 413 before the upstream sees anything', async (t) => {
  const up = await upstream(t, 'up');
  const { port } = await setup(t, [up.url], { server: { max_body_bytes: 1024 } });
  const r = await rawExchange(port, [
    `POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Length: 1025\r\nConnection: close\r\n\r\n`,
    'x'.repeat(100),
  ]);
  const headers = Object.fromEntries(r.headers);
  assertGatewayError({ status: r.status, headers, body: r.body }, 413, 'PayloadTooLarge');
  assert.equal(up.seen.length, 0);

  // At the limit exactly is fine.
  const ok = await call(`http://127.0.0.1:${port}/endpoints/cars/score`, { method: 'POST', headers: AUTH, body: 'y'.repeat(1024) });
  assert.equal(ok.status, 200);
  assert.equal(up.seen.length, 1);
});

test('a chunked body over max_body_bytes is 413 and the upstream never gets a complete body', { timeout: 15_000 }, async (t) => {
  const closed = Promise.withResolvers<void>();
  let arrived = 0;
  let completed = 0;
  let bytes = 0;
  const up = await upstream(t, 'up', (req) => {
    arrived++;
    req.on('data', (c: Buffer) => { bytes += c.length; });
    req.on('end', () => { completed++; });
    req.on('close', () => closed.resolve());
  }, true);
  const { port } = await setup(t, [up.url], { server: { max_body_bytes: 1024 } });
  const chunk = (s: string): string => `${s.length.toString(16)}\r\n${s}\r\n`;
  const r = await rawExchange(port, [
    `POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
    chunk('a'.repeat(600)), chunk('b'.repeat(600)), chunk('c'.repeat(600)), '0\r\n\r\n',
  ]);
  assertGatewayError({ status: r.status, headers: Object.fromEntries(r.headers), body: r.body }, 413, 'PayloadTooLarge');
  // If the request reached the instance, wait for its end before judging it.
  if (arrived) await closed.promise;
  assert.equal(completed, 0, 'the upstream must not receive a complete body');
  assert.ok(bytes <= 1024, `the upstream got ${bytes} bytes, more than the limit`);
});

test('a client that goes away mid-response frees the upstream request', { timeout: 15_000 }, async (t) => {
  const upstreamClosed = Promise.withResolvers<void>();
  const up = await upstream(t, 'slow', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part\n');
    res.on('close', () => upstreamClosed.resolve());
    // ...and never ends on its own.
  }, true);
  // A long timeout, so only the client's going away can end the upstream request.
  const { gw } = await setup(t, [up.url], { request_settings: { request_timeout_ms: 600_000 } });
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/cars/stream`, { headers: AUTH, agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    req.end();
  });
  await upstreamClosed.promise;
  const inst = [...gw.gw.instances.all()][0]!;
  // The attempt's bookkeeping is released too.
  await new Promise((r) => setImmediate(r));
  assert.equal(inst.inFlight, 0);
});
