import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { test, type TestContext } from 'node:test';
import { startGateway, startUpstream, type TestGateway } from '../helpers/gateway.ts';

const KEY = 'streaming-test-key';
const AUTH = { authorization: `Bearer ${KEY}` };
// If the gateway buffered, the handshake below would deadlock; this fallback lets the
// upstream finish anyway so the test fails on its assertion instead of hanging.
const FALLBACK_MS = 1_500;

/** A gateway with one endpoint whose only deployment is served by `handler` (raw: body not pre-read). */
async function setup(t: TestContext, handler: (req: IncomingMessage, res: ServerResponse) => void, server: Record<string, unknown> = {}): Promise<TestGateway> {
  const up = await startUpstream('stream', handler, true);
  const gw = await startGateway({
    server,
    endpoints: {
      chat: { keys: { primary: KEY }, traffic: { main: 100 }, deployments: { main: { instances: [up.url] } } },
    },
  });
  t.after(async () => {
    await gw.close();
    await up.close();
  });
  return gw;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

test('SSE: the first event reaches the client while the upstream still holds the stream open', { timeout: 15_000 }, async (t) => {
  const release = Promise.withResolvers<void>();
  let upstreamEnded = false;
  const gw = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('data: one\n\n');
    const fallback = setTimeout(release.resolve, FALLBACK_MS);
    void release.promise.then(() => {
      clearTimeout(fallback);
      upstreamEnded = true;
      res.end('data: two\n\n');
    });
  });

  const { status, type, text, endedWhenFirstSeen } = await new Promise<{ status: number; type: string; text: string; endedWhenFirstSeen: boolean | undefined }>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/chat/v1/chat/completions`, { method: 'POST', headers: AUTH, agent: false }, (res) => {
      let text = '';
      let endedWhenFirstSeen: boolean | undefined;
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
        if (endedWhenFirstSeen === undefined && text.includes('data: one\n\n')) {
          endedWhenFirstSeen = upstreamEnded;
          release.resolve();
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), text, endedWhenFirstSeen }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end('{"stream":true}');
  });
  assert.equal(status, 200);
  assert.equal(type, 'text/event-stream');
  assert.equal(endedWhenFirstSeen, false, 'event 1 must arrive before the upstream ends the stream');
  assert.equal(text, 'data: one\n\ndata: two\n\n');
});

test('with request_spooling off, a chunked upload over request_buffering_bytes streams through: written in pieces, every byte arrives', { timeout: 15_000 }, async (t) => {
  const firstArrived = Promise.withResolvers<void>();
  let received: Buffer | undefined;
  let clientDoneWhenFirstArrived: boolean | undefined;
  let clientDone = false;
  let upstreamTe: string | undefined;
  const gw = await setup(t, (req, res) => {
    upstreamTe = req.headers['transfer-encoding'];
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      if (!chunks.length) {
        clientDoneWhenFirstArrived = clientDone;
        firstArrived.resolve();
      }
      chunks.push(c);
    });
    req.on('end', () => {
      received = Buffer.concat(chunks);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(String(received.length));
    });
  }, { request_buffering_bytes: 1000, request_spooling: false });

  const pieces = Array.from({ length: 6 }, (_, i) => randomBytes(10_000 + i * 777));
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/chat/upload`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/octet-stream' }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    void (async () => {
      req.write(pieces[0]);
      // The rest goes only after the upstream saw the first piece: the upload is not buffered.
      const fallback = setTimeout(firstArrived.resolve, FALLBACK_MS);
      await firstArrived.promise;
      clearTimeout(fallback);
      for (const p of pieces.slice(1)) {
        await new Promise<void>((r) => req.write(p, () => r()));
        await new Promise((r) => setImmediate(r));
      }
      clientDone = true;
      req.end();
    })();
  });
  assert.equal(status, 200);
  assert.equal(upstreamTe, 'chunked');
  assert.equal(clientDoneWhenFirstArrived, false, 'the first piece must reach the upstream before the upload ends');
  const sent = Buffer.concat(pieces);
  assert.equal(received?.length, sent.length);
  assert.equal(sha256(received), sha256(sent));
});

test('a chunked upload within request_buffering_bytes is read whole first and reaches the instance with a Content-Length', async (t) => {
  let seen: { te: string | undefined; cl: string | undefined; body: Buffer } | undefined;
  const gw = await setup(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen = { te: req.headers['transfer-encoding'], cl: req.headers['content-length'], body: Buffer.concat(chunks) };
      res.end('ok');
    });
  });
  const pieces = Array.from({ length: 5 }, (_, i) => randomBytes(1000 + i));
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/chat/upload`, { method: 'POST', headers: { ...AUTH }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    void (async () => {
      for (const p of pieces) {
        await new Promise<void>((r) => req.write(p, () => r()));
        await new Promise((r) => setTimeout(r, 5));
      }
      req.end();
    })();
  });
  assert.equal(status, 200);
  const sent = Buffer.concat(pieces);
  assert.equal(seen?.te, undefined, 'buffered: no chunked framing upstream');
  assert.equal(seen?.cl, String(sent.length));
  assert.equal(sha256(seen.body), sha256(sent));
});

test('an 8 MiB response passes intact', async (t) => {
  const payload = randomBytes(8 * 1024 * 1024);
  const gw = await setup(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': payload.length });
    // Several writes, so the gateway sees many chunks and backpressure.
    for (let off = 0; off < payload.length; off += 1 << 20) res.write(payload.subarray(off, off + (1 << 20)));
    res.end();
  });
  const got = await new Promise<{ status: number; length: string | undefined; body: Buffer }>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/chat/blob`, { headers: AUTH, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, length: res.headers['content-length'], body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(got.status, 200);
  assert.equal(got.length, String(payload.length));
  assert.equal(got.body.length, payload.length);
  assert.equal(sha256(got.body), sha256(payload));
});

test('an 8 MiB upload with Content-Length passes intact', async (t) => {
  let digest: string | undefined;
  const gw = await setup(t, (req, res) => {
    const h = createHash('sha256');
    req.on('data', (c: Buffer) => h.update(c));
    req.on('end', () => {
      digest = h.digest('hex');
      res.end('ok');
    });
  });
  const payload = randomBytes(8 * 1024 * 1024);
  const status = await new Promise<number>((resolve, reject) => {
    const req = httpRequest(`${gw.url}/endpoints/chat/blob`, { method: 'PUT', headers: { ...AUTH, 'content-length': String(payload.length) }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(payload);
  });
  assert.equal(status, 200);
  assert.equal(digest, sha256(payload));
});
