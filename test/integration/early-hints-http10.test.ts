import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';

// RFC 9110 §15.2: "A server MUST NOT send a 1xx response to an HTTP/1.0 client." An
// instance's 103 Early Hints is passed on to HTTP/1.1 clients only; an HTTP/1.0 client gets
// the final response alone. The instance is a raw socket, so its answer is byte-exact.

const KEY = 'early-hints-http10-key';
const ANSWER = 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n'
  + 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';
let upstream: Server;
let gw: TestGateway;

before(async () => {
  upstream = createServer((s) => {
    s.once('data', () => s.end(ANSWER));
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

/** Everything the client receives for one request sent with `version`, as text. */
function exchange(version: '1.0' | '1.1'): Promise<string> {
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

test('an HTTP/1.0 client gets no 103 Early Hints, only the final response', async () => {
  const got = await exchange('1.0');
  assert.doesNotMatch(got, / 103 /, 'no interim response to an HTTP/1.0 client');
  assert.match(got, /^HTTP\/1\.[01] 200 OK\r\n/, got);
  assert.ok(got.endsWith('\r\n\r\nok'), got);
});

test('an HTTP/1.1 client still gets the 103 first (the control)', async () => {
  const got = await exchange('1.1');
  assert.match(got, /^HTTP\/1\.1 103 Early Hints\r\n[\s\S]*HTTP\/1\.1 200 OK\r\n/, got);
  assert.ok(got.endsWith('\r\n\r\nok'), got);
});
