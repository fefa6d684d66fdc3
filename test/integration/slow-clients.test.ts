import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import type { IncomingMessage, ServerResponse } from 'node:http';
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
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } } },
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
