import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, test } from 'node:test';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, call, type Reply, waitFor } from '../helpers/http.ts';

const PRIMARY = 'pk-7f3a9c1e-primary-key-literal';
const SECONDARY = 'sk-2b8d4f60-secondary-key-literal';
const HASHED = 'hk-91e0aa57-key-given-only-as-digest';
const BAD = 'bad-0c1d2e3f-not-a-key-of-anyone';
const SECRETS = [PRIMARY, SECONDARY, HASHED, BAD];

let up: TestUpstream;
let gw: TestGateway;

before(async () => {
  up = await startUpstream('model');
  gw = await startGateway({
    endpoints: {
      cars: {
        auth_mode: 'key',
        keys: { primary: PRIMARY, secondary: SECONDARY },
        traffic: { blue: 100 },
        deployments: { blue: { instances: [up.url] } },
      },
      boats: {
        auth_mode: 'key',
        keys: { secondary: `sha256:${createHash('sha256').update(HASHED).digest('hex')}` },
        traffic: { blue: 100 },
        deployments: { blue: { instances: [up.url] } },
      },
    },
  });
});
after(async () => {
  await gw.close();
  await up.close();
});

/** Invoke, then wait for the request's access-log line (written when the response closes). */
async function invoke(path: string, headers: Record<string, string>): Promise<{ r: Reply; line: Record<string, unknown> }> {
  const r = await call(`${gw.url}${path}`, { method: 'POST', headers, body: '{"x":1}' });
  const id = r.headers['x-request-id'];
  let line: Record<string, unknown> | undefined;
  await waitFor(() => (line = gw.logs.access().find((l) => l.request_id === id)) !== undefined, `access log line for ${String(id)}`);
  return { r, line: line! };
}

function assertUnauthorized(r: Reply): void {
  assertGatewayError(r, 401, 'Unauthorized');
  assert.match(String(r.headers['www-authenticate']), /^Bearer\b/);
}

test('the primary and the secondary key are accepted, and the log names the slot', async () => {
  for (const [key, slot] of [[PRIMARY, 'primary'], [SECONDARY, 'secondary']] as const) {
    const before = up.seen.length;
    const { r, line } = await invoke('/endpoints/cars/score', { authorization: `Bearer ${key}` });
    assert.equal(r.status, 200, r.body);
    assert.equal(up.seen.length, before + 1);
    assert.equal(line.auth, 'key');
    assert.equal(line.caller, slot);
    assert.equal(line.endpoint, 'cars');
    assert.equal(line.deployment, 'blue');
    assert.equal(line.status, 200);
    assert.equal(line.client_ip, '127.0.0.1');
  }
});

test('the scheme is case-insensitive', async () => {
  const { r } = await invoke('/endpoints/cars/score', { authorization: `bearer ${PRIMARY}` });
  assert.equal(r.status, 200);
});

test('a wrong key is 401 with WWW-Authenticate and the JSON error, and never reaches the model', async () => {
  const before = up.seen.length;
  const { r, line } = await invoke('/endpoints/cars/score', { authorization: `Bearer ${BAD}` });
  assertUnauthorized(r);
  assert.equal(line.status, 401);
  assert.equal(line.caller, undefined);
  // One endpoint's key is not another's.
  assertUnauthorized((await invoke('/endpoints/boats/score', { authorization: `Bearer ${PRIMARY}` })).r);
  assert.equal(up.seen.length, before);
});

test('missing or malformed credentials are 401 with WWW-Authenticate and the JSON error', async () => {
  const before = up.seen.length;
  const variants: Record<string, string>[] = [{}, { authorization: '' }, { authorization: 'Bearer ' }, { authorization: `Basic ${PRIMARY}` }, { authorization: PRIMARY }];
  for (const headers of variants) {
    assertUnauthorized((await invoke('/endpoints/cars/score', headers)).r);
  }
  assert.equal(up.seen.length, before);
});

test('a key configured as sha256:<hex> works', async () => {
  const { r, line } = await invoke('/endpoints/boats/score', { authorization: `Bearer ${HASHED}` });
  assert.equal(r.status, 200, r.body);
  assert.equal(line.auth, 'key');
  assert.equal(line.caller, 'secondary');
  // The digest itself is not a key.
  const digest = createHash('sha256').update(HASHED).digest('hex');
  assertUnauthorized((await invoke('/endpoints/boats/score', { authorization: `Bearer sha256:${digest}` })).r);
  assertUnauthorized((await invoke('/endpoints/boats/score', { authorization: `Bearer ${digest}` })).r);
});

// Last: looks at every line the tests above produced.
test('no captured log line contains a key, good or bad', () => {
  assert.ok(gw.logs.access().length >= 10, 'the tests above were logged');
  for (const raw of gw.logs.raw) {
    for (const secret of SECRETS) assert.ok(!raw.includes(secret), `a log line contains a key: ${raw}`);
  }
});
