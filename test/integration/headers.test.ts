import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { rawExchange, type RawReply } from '../helpers/http.ts';

const KEY = 'headers-test-key';

let up: TestUpstream;
let gw: TestGateway;
let port: number;

before(async () => {
  up = await startUpstream('hdr', (req, res) => {
    if (req.url === '/reply-hop-by-hop') {
      // Node writes these as given; a proxy must drop every one of them.
      // Chunked (no Content-Length), so Node accepts a Trailer header.
      res.writeHead(200, {
        'content-type': 'text/plain',
        connection: 'x-secret, x-other-secret',
        'x-secret': 's',
        'x-other-secret': 'o',
        'keep-alive': 'timeout=99, max=7',
        'proxy-authenticate': 'Basic realm="upstream"',
        'proxy-connection': 'keep-alive',
        trailer: 'x-checksum',
        'x-visible': 'v',
      });
      res.addTrailers({ 'x-checksum': 'c' });
      res.end('ok');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/plain', 'content-length': '2', 'x-request-id': 'from-upstream',
      'set-cookie': ['a=1; Path=/', 'b=2; Path=/'],
    });
    res.end('ok');
  });
  gw = await startGateway({
    endpoints: {
      cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } },
    },
  });
  port = Number(new URL(gw.url).port);
});
after(async () => {
  await gw.close();
  await up.close();
});

function values(r: RawReply, name: string): string[] {
  return r.headers.filter(([n]) => n === name).map(([, v]) => v);
}

test('hop-by-hop request headers, and every header Connection names, stop at the gateway', async () => {
  const r = await rawExchange(port, [[
    'POST /endpoints/cars/score HTTP/1.1',
    'Host: cars.example.test',
    `Authorization: Bearer ${KEY}`,
    'Connection: x-custom, keep-alive',
    'Connection: X-Other',
    'X-Custom: 1',
    'X-Other: 2',
    'Keep-Alive: timeout=5',
    'TE: trailers',
    'Proxy-Authorization: Basic dXNlcjpwYXNz',
    'Proxy-Connection: keep-alive',
    'Trailer: x-checksum',
    'X-Keep: yes',
    'Content-Type: text/plain',
    'Content-Length: 5',
    '',
    'hello',
  ].join('\r\n')]);
  assert.equal(r.status, 200, r.body);
  const seen = up.seen.at(-1)!;
  assert.equal(seen.body, 'hello');
  const h = seen.headers;
  for (const name of ['x-custom', 'x-other', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection', 'trailer', 'authorization']) {
    assert.equal(h[name], undefined, `${name} must not reach the instance`);
  }
  // The upstream client may use its own Connection header, but never one naming ours.
  assert.doesNotMatch(String(h.connection ?? ''), /x-custom|x-other/i);
  assert.equal(h['x-keep'], 'yes');
  assert.equal(h['content-type'], 'text/plain');
});

test('hop-by-hop response headers, and every header Connection names, stop at the gateway', async () => {
  const r = await rawExchange(port, [
    `GET /endpoints/cars/reply-hop-by-hop HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`,
  ]);
  assert.equal(r.status, 200);
  assert.match(r.body, /\bok\r\n/);
  for (const name of ['x-secret', 'x-other-secret', 'proxy-authenticate', 'proxy-connection', 'trailer']) {
    assert.deepEqual(values(r, name), [], `${name} must not reach the client`);
  }
  // The listener writes its own Connection/Keep-Alive for the client connection; the
  // instance's values must not leak through.
  assert.ok(!values(r, 'keep-alive').includes('timeout=99, max=7'), 'the instance Keep-Alive leaked');
  for (const v of values(r, 'connection')) assert.doesNotMatch(v, /x-secret|x-other-secret/i);
  assert.deepEqual(values(r, 'x-visible'), ['v']);
  assert.deepEqual(values(r, 'azureml-model-deployment'), ['blue']);
  assert.equal(values(r, 'x-request-id').length, 1);
});

test('the response carries exactly one x-request-id (the one sent upstream); repeated headers survive', async () => {
  const r = await rawExchange(port, [
    `GET /endpoints/cars/any HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nX-Request-Id: from-client\r\nConnection: close\r\n\r\n`,
  ]);
  assert.equal(r.status, 200);
  const ids = values(r, 'x-request-id');
  assert.equal(ids.length, 1);
  assert.notEqual(ids[0], 'from-upstream');
  // Repeated response headers stay separate lines.
  assert.deepEqual(values(r, 'set-cookie'), ['a=1; Path=/', 'b=2; Path=/']);
  assert.equal(up.seen.at(-1)!.headers['x-request-id'], ids[0]);
});
