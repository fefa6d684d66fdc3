import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { assertGatewayError, bearer, call, rawExchange, type Reply, replyOf, waitFor } from '../helpers/http.ts';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';

// The admin listener (issue 7 item 11): authenticate before inviting an upload, HEAD
// wherever GET works, one access line per admin call, never a credential in the logs.

const ADMIN = 'admin-secret-4c7e9a1f';
const WRONG = 'presented-wrong-secret-77d2b0';
let dir: string;
let up: TestUpstream;
let gw: TestGateway;
let adminPort: number;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-admin-'));
  up = await startUpstream('blue');
  gw = await startGateway({
    admin: { keys: [ADMIN] },
    state: { file: join(dir, 'state.json') },
    endpoints: { cars: { keys: { primary: 'cars-key-1' }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } } },
  });
  adminPort = Number(new URL(gw.adminUrl).port);
});
after(async () => {
  await gw.close();
  await up.close();
  await rm(dir, { recursive: true, force: true });
});

const adminLines = (): Record<string, unknown>[] => gw.logs.lines.filter((l) => l.msg === 'admin request');

interface Head { readonly status: number; readonly headers: Map<string, string> }

/**
 * On a raw socket: send a request head with `Expect: 100-continue`, upload `body` only if
 * the server answers 100 Continue, and report every response head seen plus the final body.
 */
function expectContinue(path: string, headers: string[], body: string): Promise<{ heads: Head[]; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(adminPort, '127.0.0.1');
    const heads: Head[] = [];
    let buf = Buffer.alloc(0);
    let sent = false;
    const finish = (rest: Buffer): void => {
      sock.destroy();
      resolve({ heads, body: rest.toString('utf8') });
    };
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      for (;;) {
        const last = heads.at(-1);
        if (last && last.status >= 200) {
          const len = Number(last.headers.get('content-length') ?? 0);
          if (buf.length >= len) finish(buf);
          return;
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [statusLine = '', ...lines] = buf.toString('latin1', 0, end).split('\r\n');
        buf = buf.subarray(end + 4);
        const h = new Map(lines.map((l) => [l.slice(0, l.indexOf(':')).trim().toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        heads.push({ status: Number(statusLine.split(' ')[1]), headers: h });
        if (heads.at(-1)!.status === 100 && !sent) {
          sent = true;
          sock.write(body);
        }
      }
    });
    sock.on('error', reject);
    sock.on('close', () => resolve({ heads, body: buf.toString('utf8') }));
    sock.write([
      `POST ${path} HTTP/1.1`, 'Host: admin', 'Expect: 100-continue', 'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(body)}`, ...headers, '', '',
    ].join('\r\n'));
  });
}

test('an unauthenticated upload with Expect: 100-continue gets 401 without being invited', async () => {
  const r = await expectContinue('/admin/endpoints/cars/keys/regenerate', [`Authorization: Bearer ${WRONG}`], '{"key_type":"primary"}');
  assert.deepEqual(r.heads.map((h) => h.status), [401], 'no 100 Continue before the 401');
  assert.equal(r.heads[0]!.headers.get('connection'), 'close', 'the uninvited body is never read as a request');
  assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'Unauthorized');
  const none = await expectContinue('/admin/endpoints/cars/keys/regenerate', [], '{"key_type":"primary"}');
  assert.deepEqual(none.heads.map((h) => h.status), [401]);
});

test('an authenticated upload with Expect: 100-continue is invited, then answered', async () => {
  const r = await expectContinue('/admin/endpoints/cars/keys/regenerate', [`Authorization: Bearer ${ADMIN}`], '{"key_type":"secondary"}');
  assert.deepEqual(r.heads.map((h) => h.status), [100, 200]);
  const out = JSON.parse(r.body) as { endpoint: string; key_type: string; key: string };
  assert.equal(out.endpoint, 'cars');
  assert.equal(out.key_type, 'secondary');
  const score = await call(`${gw.url}/endpoints/cars/score`, { body: '{}', headers: bearer(out.key) });
  assert.equal(score.status, 200, 'the regenerated key works');
});

/** GET and HEAD of one path: HEAD has GET's status and headers, and no body. */
async function assertHeadLikeGet(path: string, headers: Record<string, string> = {}): Promise<{ get: Reply; head: Reply }> {
  const get = await call(`${gw.adminUrl}${path}`, { headers });
  const head = await call(`${gw.adminUrl}${path}`, { method: 'HEAD', headers });
  assert.equal(head.status, get.status, `${path}: HEAD status`);
  assert.equal(head.body, '', `${path}: HEAD has no body`);
  assert.ok(get.body.length > 0, `${path}: GET has a body`);
  assert.equal(head.headers['content-type'], get.headers['content-type'], `${path}: content-type`);
  assert.equal(head.headers['content-length'], get.headers['content-length'], `${path}: HEAD announces GET's length`);
  assert.equal(Number(get.headers['content-length']), Buffer.byteLength(get.body));
  return { get, head };
}

test('HEAD works wherever GET does, with the same headers and no body', async () => {
  const ready = await assertHeadLikeGet('/readyz');
  assert.equal(ready.head.status, 200);
  await assertHeadLikeGet('/healthz');
  const eps = await assertHeadLikeGet('/admin/endpoints', bearer(ADMIN));
  assert.equal(eps.head.status, 200);
  assert.ok(eps.get.headers.etag, 'GET has an ETag');
  assert.equal(eps.head.headers.etag, eps.get.headers.etag);
  const one = await assertHeadLikeGet('/admin/endpoints/cars', bearer(ADMIN));
  assert.equal(one.head.headers.etag, one.get.headers.etag);
  // Errors too: HEAD without credentials is a 401 with the 401's headers.
  const denied = await assertHeadLikeGet('/admin/endpoints');
  assert.equal(denied.head.status, 401);
  assert.ok(denied.head.headers['www-authenticate']);
  const missing = await assertHeadLikeGet('/admin/endpoints/nope', bearer(ADMIN));
  assert.equal(missing.head.status, 404);
});

test('a 405 lists HEAD among the methods of a GET resource', async () => {
  const r = await call(`${gw.adminUrl}/admin/endpoints`, { method: 'POST', body: '{}', headers: bearer(ADMIN) });
  assert.equal(r.status, 405);
  assert.equal(r.headers.allow, 'GET, HEAD');
});

test('a malformed percent-escape in a path parameter is a 400, not an internal error', async () => {
  const r = await call(`${gw.adminUrl}/admin/endpoints/%E0%A4%A`, { headers: bearer(ADMIN) });
  assert.equal(r.status, 400);
  assert.equal(r.json<{ error: { code: string } }>().error.code, 'BadRequest');
  assert.equal(gw.logs.lines.filter((l) => l.msg === 'admin request failed').length, 0, 'no error logged as a gateway bug');
  const stranger = await call(`${gw.adminUrl}/admin/endpoints/%E0%A4%A`);
  assert.equal(stranger.status, 401, 'authentication still comes first');
});

test('more than one Host or Authorization header, or an Upgrade, is a 400 on the admin listener too, before authentication', async () => {
  const cases: [string, string[]][] = [
    ['/healthz', ['Host: a', 'Host: b']],
    ['/healthz', ['Host: a', 'host: a']],
    ['/admin/endpoints', ['Host: a', `Authorization: Bearer ${ADMIN}`, 'authorization: Bearer wrong']],
    ['/admin/endpoints', ['Host: a', 'Authorization: Bearer wrong', `Authorization: Bearer ${ADMIN}`]],
  ];
  for (const [path, lines] of cases) {
    const r = await rawExchange(adminPort, [`${[`GET ${path} HTTP/1.1`, ...lines].join('\r\n')}\r\n\r\n`]);
    const body = assertGatewayError(replyOf(r), 400, 'BadRequest');
    assert.match(body.error.message, /more than one (Host|Authorization) header/, `${path} ${lines.join(' | ')}`);
    assert.equal(r.headers.find(([n]) => n === 'connection')?.[1], 'close');
  }
  // An Upgrade (WebSocket) is refused as on the invocation listeners.
  const ws = await rawExchange(adminPort, ['GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n']);
  assert.match(assertGatewayError(replyOf(ws), 400, 'BadRequest').error.message, /Protocol upgrades/);
  // One of each is fine.
  const ok = await rawExchange(adminPort, [`GET /admin/endpoints HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${ADMIN}\r\nConnection: close\r\n\r\n`]);
  assert.equal(ok.status, 200);
});

test('one access line per admin call: who, what, status; failed logins too; never a credential', async () => {
  const before = adminLines().length;
  const calls: { method: string; path: string; headers: Record<string, string> }[] = [
    { method: 'GET', path: '/healthz', headers: {} },
    { method: 'GET', path: '/admin/endpoints?verbose=1', headers: bearer(ADMIN) },
    { method: 'HEAD', path: '/admin/endpoints/cars', headers: bearer(ADMIN) },
    { method: 'GET', path: '/admin/endpoints', headers: bearer(WRONG) },
    { method: 'GET', path: '/admin/endpoints', headers: {} },
  ];
  const replies: Reply[] = [];
  for (const c of calls) replies.push(await call(`${gw.adminUrl}${c.path}`, { method: c.method, headers: c.headers }));
  await waitFor(() => adminLines().length >= before + calls.length, 'admin access lines');
  const lines = adminLines().slice(before);
  assert.equal(lines.length, calls.length, 'exactly one line per call');
  for (const [i, c] of calls.entries()) {
    const l = lines[i]!;
    const r = replies[i]!;
    assert.equal(l.method, c.method);
    assert.equal(l.path, c.path.split('?')[0], 'the path, without the query');
    assert.equal(l.status, r.status);
    assert.equal(l.request_id, r.headers['x-request-id'], 'the line names the request id the caller got');
    assert.equal(l.client_ip, '127.0.0.1');
    assert.equal(typeof l.duration_ms, 'number');
  }
  assert.equal(lines[0]!.auth, undefined, 'no auth on /healthz');
  assert.deepEqual([lines[1]!.auth, lines[1]!.caller], ['admin_key', 'admin-key-1'], 'who: the key slot, not the key');
  assert.deepEqual([lines[3]!.status, lines[3]!.error, lines[3]!.auth, lines[3]!.caller], [401, 'Unauthorized', undefined, undefined]);
  assert.deepEqual([lines[4]!.status, lines[4]!.error], [401, 'Unauthorized']);
  const all = gw.logs.raw.join('\n');
  assert.ok(!all.includes(WRONG), 'the presented wrong credential is in no log line');
  assert.ok(!all.includes(ADMIN), 'the admin key is in no log line');
});
