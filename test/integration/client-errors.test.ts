import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect } from 'node:net';
import { manualClock } from '../helpers/clock.ts';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, rawExchange, type RawReply, replyOf, waitFor } from '../helpers/http.ts';

// Rejections Node's HTTP parser makes before the gateway sees a request (issue 7 item 7):
// the SPEC §4 JSON body with an x-request-id, a counter by reason, a rate-limited log line.

const KEY = 'client-errors-key';
let up: TestUpstream;
let gw: TestGateway;
let port: number;
let adminPort: number;

before(async () => {
  up = await startUpstream('blue');
  gw = await startGateway({
    admin: { keys: ['admin-key'] },
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } } },
  });
  port = Number(new URL(gw.url).port);
  adminPort = Number(new URL(gw.adminUrl).port);
});
after(async () => {
  await gw.close();
  await up.close();
});

const head = (lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`;


function assertRejected(r: RawReply, status: number, code: string): void {
  assertGatewayError(replyOf(r), status, code);
  assert.equal(r.headers.find(([n]) => n === 'connection')?.[1], 'close', 'the connection is closed after the answer');
}

const PROBES: { name: string; chunks: string[]; status: number; code: string; reason: string }[] = [
  {
    name: 'Content-Length with Transfer-Encoding (smuggling attempt)',
    chunks: [head(['POST /endpoints/cars/score HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`, 'Content-Length: 5', 'Transfer-Encoding: chunked']) + '0\r\n\r\n'],
    status: 400, code: 'BadRequest', reason: 'ambiguous_framing',
  },
  {
    name: 'two Content-Lengths (smuggling attempt)',
    chunks: [head(['POST /endpoints/cars/score HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`, 'Content-Length: 5', 'Content-Length: 6']) + 'hello!'],
    status: 400, code: 'BadRequest', reason: 'ambiguous_framing',
  },
  {
    name: 'a malformed request line',
    chunks: [head(['GET /endpoints/cars/score with spaces HTTP/1.1', 'Host: x'])],
    status: 400, code: 'BadRequest', reason: 'bad_request',
  },
  {
    name: 'a header block over the maximum header size',
    chunks: [head(['GET /endpoints/cars/score HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(20_000)}`])],
    status: 431, code: 'RequestHeaderFieldsTooLarge', reason: 'header_too_large',
  },
  {
    name: 'an Expect other than 100-continue',
    chunks: [head(['POST /endpoints/cars/score HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`, 'Expect: something-else', 'Content-Length: 2']) + '{}'],
    status: 417, code: 'ExpectationFailed', reason: 'bad_expect',
  },
];

for (const p of PROBES) {
  test(`invocation listener: ${p.name} gets ${p.status} with the JSON error body`, async () => {
    const before = up.seen.length;
    assertRejected(await rawExchange(port, p.chunks), p.status, p.code);
    assert.equal(up.seen.length, before, 'nothing reached the model');
  });
  test(`admin listener: ${p.name} gets ${p.status} with the JSON error body`, async () => {
    assertRejected(await rawExchange(adminPort, p.chunks), p.status, p.code);
  });
}

test('a malformed chunk in an upload already handed to the gateway: 400 to the client, logged as its fault', async () => {
  const r = await rawExchange(port, [
    head(['POST /endpoints/cars/score HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`, 'Transfer-Encoding: chunked']) + '5\r\nhello\r\nzz\r\n',
  ]);
  assertRejected(r, 400, 'BadRequest');
  const id = r.headers.find(([n]) => n === 'x-request-id')![1];
  await waitFor(() => gw.logs.access().some((l) => l.path === '/endpoints/cars/score' && l.termination === 'client_bad_request'), 'the access line');
  const line = gw.logs.access().find((l) => l.termination === 'client_bad_request')!;
  assert.equal(line.status, 400, 'the status the client was sent, not 499 or 502');
  assert.equal(line.error, undefined);
  assert.ok(typeof id === 'string' && id.length > 0);
});

test('a connection that still sends after the rejection gets the answer, not a reset', async () => {
  const r = await rawExchange(port, [
    head(['GET /endpoints/cars/score HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(200_000)}`]),
    head(['GET /endpoints/cars/score HTTP/1.1', 'Host: x']),
  ]);
  assertRejected(r, 431, 'RequestHeaderFieldsTooLarge');
});

test('each rejection is counted by reason and logged at most once per reason per interval', async (t) => {
  // A real gateway: what /metrics on the admin listener shows, and its own log.
  const clock = manualClock();
  const g = await startGateway({
    // Node's own header deadline, short so the 408 comes quickly.
    server: { client_header_timeout_ms: 300 },
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } } },
  }, { clock: clock.now });
  t.after(() => g.close());
  const logs = g.logs;
  const p = Number(new URL(g.url).port);
  const count = async (): Promise<Record<string, number>> => {
    const text = await (await fetch(`${g.adminUrl}/metrics`)).text();
    return Object.fromEntries([...text.matchAll(/^switchyard_client_errors_total\{reason="(\w+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
  };
  assert.equal((await count()).ambiguous_framing, 0, 'every reason is exported from the start');

  for (const probe of PROBES) assert.equal((await rawExchange(p, probe.chunks)).status, probe.status);
  assertRejected(await rawExchange(p, ['GET / HTTP/1.1\r\nHost: x\r\n']), 408, 'RequestTimeout');

  const c = await count();
  assert.equal(c.ambiguous_framing, 2);
  assert.equal(c.bad_request, 1);
  assert.equal(c.header_too_large, 1);
  assert.equal(c.bad_expect, 1);
  assert.equal(c.header_timeout, 1);

  const lines = () => logs.lines.filter((l) => l.msg === 'client request rejected');
  // Two smuggling attempts in the same instant: one line.
  assert.deepEqual(lines().map((l) => l.reason).sort(), ['ambiguous_framing', 'bad_expect', 'bad_request', 'header_timeout', 'header_too_large']);
  const line = lines().find((l) => l.reason === 'header_too_large')!;
  assert.equal(line.listener, 'public');
  assert.equal(line.status, 431);
  assert.equal(line.code, 'HPE_HEADER_OVERFLOW');
  assert.equal(line.client_ip, '127.0.0.1');
  assert.match(String(line.request_id), /^[0-9a-f-]{36}$/);

  clock.advance(10_000);
  assert.equal((await rawExchange(p, PROBES[0]!.chunks)).status, 400);
  const next = lines().filter((l) => l.reason === 'ambiguous_framing');
  assert.equal(next.length, 2, 'a new interval: a new line');
  assert.equal(next[1]!.suppressed_since_last, 1, 'it says one was held back');
});

test('a client that leaves mid-response is 499 client_aborted even when the instance sent a Content-Length', async (t) => {
  // A body far larger than the socket buffers: the gateway is still writing when the client goes.
  const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
  const bigUp = await startUpstream('big', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': big.length });
    res.end(big);
  });
  const g = await startGateway({
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [bigUp.url] } } } },
  });
  t.after(async () => {
    await g.close();
    await bigUp.close();
  });
  const s = connect(Number(new URL(g.url).port), '127.0.0.1');
  s.on('error', () => {});
  s.write(head(['GET /endpoints/cars/big HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`]));
  // `| head -c 1000`: read the first bytes, then go.
  await new Promise((r) => s.once('data', r));
  s.destroy();
  await waitFor(() => g.logs.access().length > 0, 'the access line');
  const line = g.logs.access()[0]!;
  assert.equal(line.termination, 'client_aborted');
  assert.equal(line.status, 499, 'a client that left is 499, whatever status line had gone out');
  const text = await (await fetch(`${g.adminUrl}/metrics`)).text();
  assert.ok(text.includes('switchyard_requests_total{endpoint="cars",deployment="blue",code="499",termination="client_aborted"} 1'), text.split('\n').filter((l) => l.startsWith('switchyard_requests_total')).join('\n'));
});

test('CONNECT gets 405 with the JSON error body on every listener, is counted and logged', async (t) => {
  const clock = manualClock();
  const g = await startGateway({
    admin: { keys: ['admin-key'] },
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } } },
  }, { clock: clock.now });
  t.after(() => g.close());
  const count = async (): Promise<number> => {
    const text = await (await fetch(`${g.adminUrl}/metrics`)).text();
    return Number(/^switchyard_client_errors_total\{reason="connect_method"\} (\d+)$/m.exec(text)?.[1]);
  };
  assert.equal(await count(), 0, 'the reason is exported from the start');
  const before = up.seen.length;
  for (const [listener, url] of [['public', g.url], ['admin', g.adminUrl]] as const) {
    const r = await rawExchange(Number(new URL(url).port), [head(['CONNECT example.com:443 HTTP/1.1', 'Host: example.com:443']) + 'tunnel bytes']);
    assertRejected(r, 405, 'MethodNotAllowed');
    assert.match(JSON.parse(r.body).error.message as string, /CONNECT is not supported/);
    assert.match(r.headers.find(([n]) => n === 'allow')?.[1] ?? '', /^GET, HEAD, POST/, `${listener}: a 405 says what is allowed`);
  }
  assert.equal(up.seen.length, before, 'nothing reached the model');
  assert.equal(await count(), 2);
  const lines = g.logs.lines.filter((l) => l.msg === 'client request rejected' && l.reason === 'connect_method');
  assert.equal(lines.length, 1, 'at most one line per reason per interval');
  assert.equal(lines[0]!.listener, 'public');
  assert.equal(lines[0]!.status, 405);
  assert.equal(lines[0]!.client_ip, '127.0.0.1');
});
