import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { startGateway, startUpstream, type TestGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/http.ts';

// Issue 7 item 4: the access line and switchyard_requests_total tell the status sent apart
// from how the exchange ended, so client faults are not blamed on the model.

const KEY = 'termination-key';
const AUTH = `Authorization: Bearer ${KEY}\r\n`;

async function setup(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void, server: Record<string, unknown> = {}, timeoutMs = 5000): Promise<TestGateway> {
  const up = await startUpstream('m', handler, true);
  const gw = await startGateway({
    server,
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url], request_settings: { request_timeout_ms: timeoutMs } } } } },
  });
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  return gw;
}

function open(gw: TestGateway): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect(Number(new URL(gw.url).port), '127.0.0.1', () => resolve(s));
    s.on('error', () => {});
  });
}

async function ended(gw: TestGateway): Promise<Record<string, unknown>> {
  await waitFor(() => gw.logs.access().length > 0, 'an access line');
  return gw.logs.access()[0]!;
}

async function counted(gw: TestGateway, code: number, termination: string): Promise<boolean> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  return text.includes(`switchyard_requests_total{endpoint="cars",deployment="blue",code="${code}",termination="${termination}"} 1`);
}

const echo = (req: IncomingMessage, res: ServerResponse): void => {
  req.resume();
  req.on('end', () => res.end('ok'));
};

test('an upload cut short by the client is 499 client_aborted, not 502 (buffered and streamed bodies)', async (t) => {
  for (const buffering of [1_048_576, 16]) {
    await t.test(`request_buffering_bytes ${buffering}`, async (t2) => {
      const gw = await setup(t2, echo, { request_buffering_bytes: buffering });
      const s = await open(gw);
      s.write(`POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 100\r\n\r\n0123456789012345678901234`);
      await sleep(50);
      s.destroy();
      const line = await ended(gw);
      assert.equal(line.status, 499);
      assert.equal(line.termination, 'client_aborted');
      assert.equal(line.error, undefined, 'no gateway error: the model did nothing wrong');
      assert.ok(await counted(gw, 499, 'client_aborted'));
    });
  }
});

test('a client that hangs up mid-response is 499 client_aborted', async (t) => {
  const gw = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first part\n');
  });
  const s = await open(gw);
  s.write(`GET /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
  await new Promise((r) => s.once('data', r));
  s.destroy();
  const line = await ended(gw);
  assert.equal(line.status, 499);
  assert.equal(line.termination, 'client_aborted');
});

test('an event stream cut by request_timeout_ms logs the 200 the client got, ended by upstream_timeout', async (t) => {
  const gw = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\n');
  }, {}, 200);
  const s = await open(gw);
  s.write(`GET /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
  const line = await ended(gw);
  assert.equal(line.status, 200);
  assert.equal(line.termination, 'upstream_timeout');
  assert.ok(await counted(gw, 200, 'upstream_timeout'));
  s.destroy();
});

test('an instance that resets mid-stream: the status sent, ended by upstream_reset', async (t) => {
  const gw = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial');
    setTimeout(() => res.socket?.destroy(), 20);
  });
  const s = await open(gw);
  s.write(`GET /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
  const line = await ended(gw);
  assert.equal(line.status, 200);
  assert.equal(line.termination, 'upstream_reset');
  s.destroy();
});

test('a stream still open when the drain grace ends is ended by shutdown', async (t) => {
  const gw = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: one\n\n');
  }, { shutdown_grace_ms: 100 });
  const s = await open(gw);
  s.write(`GET /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n${AUTH}\r\n`);
  await new Promise((r) => s.once('data', r));
  await gw.gw.shutdown();
  const line = await ended(gw);
  assert.equal(line.status, 200);
  assert.equal(line.termination, 'shutdown');
  s.destroy();
});

test('an upload that stalls past client_body_timeout_ms is 408 client_bad_request (buffered and streamed)', async (t) => {
  for (const buffering of [1_048_576, 16]) {
    await t.test(`request_buffering_bytes ${buffering}`, async (t2) => {
      const gw = await setup(t2, echo, { request_buffering_bytes: buffering, client_body_timeout_ms: 150 });
      const s = await open(gw);
      let got = '';
      s.on('data', (d: Buffer) => { got += d.toString(); });
      s.write(`POST /endpoints/cars/score HTTP/1.1\r\nHost: x\r\n${AUTH}Content-Length: 100\r\n\r\n0123456789012345678901234`);
      await waitFor(() => got.includes('\r\n\r\n{'), 'a response');
      assert.match(got, /^HTTP\/1\.1 408 /);
      assert.match(got, /"code":"RequestTimeout"/);
      const line = await ended(gw);
      assert.equal(line.status, 408);
      assert.equal(line.termination, 'client_bad_request');
      s.destroy();
    });
  }
});
