import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

// Issue 7 item 5: what an instance may answer that a plain HTTP server would not. The
// instance here is a raw socket so every byte of its answer is the test's choice.

const KEY = 'upstream-responses-key';
let reply = '';
let upstream: Server;
let gw: TestGateway;

before(async () => {
  upstream = createServer((s) => {
    s.once('data', () => s.end(reply));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  gw = await startGateway({ endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [url] } } } } });
});
after(async () => {
  await gw.close();
  await new Promise((r) => upstream.close(r));
});

/** Everything the client receives for one request (sent as HTTP/`version`), as text. */
function exchange(answer: string, version: '1.0' | '1.1' = '1.1'): Promise<string> {
  reply = answer;
  return new Promise((resolve) => {
    let got = '';
    const sock = connect(Number(new URL(gw.url).port), '127.0.0.1', () => {
      sock.write(`GET /endpoints/cars/score HTTP/${version}\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`);
    });
    sock.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    sock.on('close', () => resolve(got));
    sock.on('error', () => resolve(got));
  });
}

function lastAccess(): Record<string, unknown> {
  const lines = gw.logs.access();
  return lines[lines.length - 1] ?? {};
}

test('103 Early Hints reaches the client, then the final response', async () => {
  const got = await exchange('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n'
    + 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  assert.match(got, /^HTTP\/1\.1 103 Early Hints\r\n[Ll]ink: <\/style\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  assert.ok(got.endsWith('\r\n\r\nok'), got);
  assert.equal(lastAccess().status, 200);
});

test('an HTTP/1.0 client gets no 103 Early Hints, only the final response (RFC 9110 §15.2)', async () => {
  const got = await exchange('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n'
    + 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok', '1.0');
  assert.doesNotMatch(got, / 103 /, 'no interim response to an HTTP/1.0 client');
  assert.match(got, /^HTTP\/1\.[01] 200 OK\r\n/, got);
  assert.ok(got.endsWith('\r\n\r\nok'), got);
});

test('other interim responses (102 Processing) are dropped; the final response arrives', async () => {
  const got = await exchange('HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(got, /102/);
  assert.ok(got.endsWith('ok'));
});

test('an unsolicited 100 Continue is a 502 that says what happened (undici closes such connections)', async () => {
  const got = await exchange('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  assert.match(got, /^HTTP\/1\.1 502 /);
  assert.match(got, /100 Continue nobody asked for/);
  assert.equal(lastAccess().termination, 'upstream_reset');
});

test('204 and 304 never carry a Content-Length or body', async () => {
  for (const status of ['204 No Content', '304 Not Modified']) {
    const got = await exchange(`HTTP/1.1 ${status}\r\nContent-Length: 5\r\nETag: "v1"\r\nConnection: close\r\n\r\n`);
    assert.match(got, new RegExp(`^HTTP/1\\.1 ${status}\\r\\n`));
    assert.doesNotMatch(got, /content-length/i, got);
    assert.ok(got.endsWith('\r\n\r\n'), 'no body');
  }
});

test('a status outside 100-599 from the instance is 502', async () => {
  const got = await exchange('HTTP/1.1 600 Odd\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  assert.match(got, /^HTTP\/1\.1 502 /);
  assert.match(got, /outside 100-599/);
});
