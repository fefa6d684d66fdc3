import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor } from '../helpers/http.ts';

// A drain (SIGTERM, or the old process of a rolling restart) refuses new connections but
// still serves requests arriving on connections already open, each response closing its
// connection, so a client with a keep-alive connection loses nothing.
const KEY = 'drain-test-key-0123456789';

/** Read one HTTP response (headers and a Content-Length body) from a socket. */
async function readResponse(sock: Socket): Promise<{ status: number; head: string; body: string }> {
  let buf = '';
  for (;;) {
    const end = buf.indexOf('\r\n\r\n');
    if (end >= 0) {
      const head = buf.slice(0, end);
      const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length >= end + 4 + len) return { status: Number(head.split(' ')[1]), head, body: buf.slice(end + 4, end + 4 + len) };
    }
    const [chunk] = await once(sock, 'data') as [Buffer];
    buf += chunk.toString('latin1');
  }
}

/** A gateway in front of `model`, and one keep-alive connection to it that served one request. */
async function connected(model: TestUpstream): Promise<{ gw: TestGateway; port: number; sock: Socket }> {
  const gw = await startGateway({ endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [model.url] } } } } });
  const port = gw.gw.addresses.public.port;
  const sock = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  sock.write(request(port));
  const first = await readResponse(sock);
  assert.equal(first.status, 200);
  assert.doesNotMatch(first.head, /connection: close/i, 'keep-alive before the drain');
  return { gw, port, sock };
}

const request = (port: number, path = 'score') => `POST /endpoints/cars/${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`;

test('while draining, a request on an open keep-alive connection is served and its response closes the connection', async () => {
  const held: (() => void)[] = [];
  const model = await startUpstream('blue', (req, res) => {
    const answer = () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    if (req.url === '/hold') held.push(answer);
    else answer();
  });
  const { gw, port, sock } = await connected(model);
  try {
    // A request in flight keeps the drain going.
    // On a keep-alive connection of its own (a Node client with agent: false asks for close).
    const holder = connect(port, '127.0.0.1');
    await once(holder, 'connect');
    holder.write(request(port, 'hold'));
    const inFlight = readResponse(holder);
    await waitFor(() => held.length === 1, 'the held request to reach the model');
    const drained = gw.gw.shutdown();
    await waitFor(() => gw.gw.draining, 'the drain to begin');

    sock.write(request(port));
    const second = await readResponse(sock);
    assert.equal(second.status, 200, second.body);
    assert.match(second.head, /connection: close/i);
    await once(sock, 'close');
    // New connections are refused.
    await assert.rejects(call(`${gw.url}/endpoints/cars/score`, { body: '{}', headers: bearer(KEY) }), /ECONNREFUSED/);

    held.shift()!();
    const answered = await inFlight;
    assert.equal(answered.status, 200);
    assert.match(answered.head, /connection: close/i, 'a request already in flight when the drain began closes its connection too');
    holder.destroy();
    await drained;
  } finally {
    sock.destroy();
    await gw.close();
    await model.close();
  }
});

test('while draining, a connection left idle is closed after a second, not at once', async () => {
  const model = await startUpstream('blue');
  const { gw, sock } = await connected(model);
  try {
    const started = Date.now();
    const drained = gw.gw.shutdown();
    await once(sock, 'close');
    const waited = Date.now() - started;
    assert.ok(waited >= 800, `the idle connection was closed after ${waited} ms`);
    await drained;
  } finally {
    sock.destroy();
    await gw.close();
    await model.close();
  }
});
