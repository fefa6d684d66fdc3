import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { formatIssues, parseConfig } from '../../config/load.ts';
import { config, startGateway, startUpstream, withTestListeners, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { startStandInEntra, TENANT, OTHER_TENANT, AUDIENCE, type StandInEntra } from '../helpers/entra.ts';
import { bearer, call } from '../helpers/http.ts';

// Entra-style tokens and key rotation end to end: a stand-in Entra over loopback HTTP,
// the gateway, a model server. What the caller sees, what the model sees, what is logged.
const KEY1 = 'primary-key-value-1';
const KEY2 = 'secondary-key-value-2';
const ADMIN = 'admin-key-value';
let entra: StandInEntra;
let model: TestUpstream;
let gw: TestGateway;
const stateDir = mkdtempSync(join(tmpdir(), 'switchyard-test-'));
const stateFile = join(stateDir, 'state.json');
// The test's temporary directories are its own to remove.
after(() => rmSync(stateDir, { recursive: true, force: true }));
let doc: Record<string, unknown>;

const ready = (async () => {
  entra = await startStandInEntra();
  model = await startUpstream('blue');
  doc = {
    state: { file: stateFile },
    entra: { authority: entra.authority, tenants: [TENANT], audiences: [AUDIENCE] },
    admin: { keys: [ADMIN], entra_roles: ['Switchyard.Admin'] },
    endpoints: {
      tok: { auth_mode: 'aad_token', roles: ['Scorer'], traffic: { blue: 100 }, deployments: { blue: { instances: [model.url] } } },
      both: {
        auth_mode: 'key_or_aad_token',
        keys: { primary: KEY1, secondary: KEY2 },
        traffic: { blue: 100 },
        deployments: { blue: { instances: [model.url] } },
      },
    },
  };
  gw = await startGateway(doc);
})();

after(async () => {
  await gw?.close();
  await model?.close();
  await entra?.close();
});

const score = (ep: string, headers: Record<string, string>) => call(`${gw.url}/endpoints/${ep}/score`, { body: '{}', headers });

test('a valid token with the role is served; the model never sees it; the log names the oid', async () => {
  await ready;
  const token = await entra.sign({ roles: ['Scorer'], oid: 'caller-oid-1' });
  const r = await score('tok', bearer(token));
  assert.equal(r.status, 200);
  assert.equal(model.seen.at(-1)?.headers.authorization, undefined);
  const line = gw.logs.access().at(-1);
  assert.equal(line?.auth, 'aad_token');
  assert.equal(line?.caller, 'caller-oid-1');
  assert.ok(!gw.logs.raw.some((l) => l.includes(token) || l.includes(token.split('.')[2]!)), 'token never logged');
  const metrics = await call(`${gw.adminUrl}/metrics`);
  assert.match(metrics.body, /switchyard_caller_requests_total\{endpoint="tok",auth="aad_token",caller="caller-oid-1"\} 1/);
});

test('delegated scopes (scp) satisfy the role check too', async () => {
  await ready;
  const r = await score('tok', bearer(await entra.sign({ roles: undefined, scp: 'openid Scorer' })));
  assert.equal(r.status, 200);
});

test('a valid token without the role is 403; a bad one is 401 with WWW-Authenticate', async () => {
  await ready;
  const noRole = await score('tok', bearer(await entra.sign({ roles: ['Reader'], scp: undefined })));
  assert.equal(noRole.status, 403);
  assert.equal(noRole.json<{ error: { code: string } }>().error.code, 'Forbidden');

  const expired = await score('tok', bearer(await entra.sign({ roles: ['Scorer'] }, { lifetimeS: -3600 })));
  assert.equal(expired.status, 401);
  assert.match(String(expired.headers['www-authenticate']), /^Bearer .*error="invalid_token"/);

  const foreign = await score('tok', bearer(await entra.sign({ roles: ['Scorer'], tid: OTHER_TENANT })));
  assert.equal(foreign.status, 403, 'a valid token from a tenant not allowed');

  const aKey = await score('tok', bearer(KEY1));
  assert.equal(aKey.status, 401, 'aad_token endpoints take no keys');
  const metrics = (await call(`${gw.adminUrl}/metrics`)).body;
  assert.match(metrics, /switchyard_auth_failures_total\{endpoint="tok",code="401"\} 2/);
  assert.match(metrics, /switchyard_auth_failures_total\{endpoint="tok",code="403"\} 2/);
});

test('key_or_aad_token takes either', async () => {
  await ready;
  assert.equal((await score('both', bearer(KEY1))).status, 200);
  assert.equal((await score('both', bearer(await entra.sign()))).status, 200);
  assert.equal((await score('both', bearer('wrong'))).status, 401);
});

test('regenerating a key: shown once, effective at once, old value rejected, kept across restart', async () => {
  await ready;
  const url = `${gw.adminUrl}/admin/endpoints/both/keys/regenerate`;
  assert.equal((await call(url, { body: '{"key_type":"primary"}' })).status, 401, 'needs admin credentials');
  assert.equal((await call(url, { body: '{"key_type":"primary"}', headers: bearer(KEY1) })).status, 401, 'an endpoint key is no admin key');
  assert.equal((await call(url, { body: '{"key_type":"tertiary"}', headers: bearer(ADMIN) })).status, 400);
  assert.equal((await call(url, { body: '{not json', headers: bearer(ADMIN) })).status, 400);
  const bad = await call(url, { body: '{"key_type":"tertiary"}', headers: bearer(ADMIN) });
  assert.ok(bad.headers['x-request-id'], 'admin errors carry a request id too');
  assert.equal(bad.json<{ error: { request_id: string } }>().error.request_id, bad.headers['x-request-id']);
  const post = await call(`${gw.adminUrl}/admin/endpoints/both`, { method: 'POST', body: '{}', headers: bearer(ADMIN) });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD, PUT, PATCH, DELETE', 'HEAD works wherever GET does (RFC 9110 §9.3.2)');

  const r = await call(url, { body: '{"key_type":"primary"}', headers: bearer(ADMIN) });
  assert.equal(r.status, 200);
  const fresh = r.json<{ key: string; key_type: string }>().key;
  assert.ok(fresh.length >= 32);
  assert.equal((await score('both', bearer(fresh))).status, 200);
  assert.equal((await score('both', bearer(KEY1))).status, 401, 'the old primary is revoked');
  assert.equal((await score('both', bearer(KEY2))).status, 200, 'the secondary is untouched');

  const state = readFileSync(stateFile, 'utf8');
  assert.ok(!state.includes(fresh), 'only a digest is stored');
  assert.match(state, /sha256:[0-9a-f]{64}/);
  assert.ok(!gw.logs.raw.some((l) => l.includes(fresh)), 'the new key is never logged');

  // A restart with the same file and state keeps the new key and the revocation.
  const again = await startGateway(doc);
  try {
    assert.equal((await call(`${again.url}/endpoints/both/score`, { body: '{}', headers: bearer(fresh) })).status, 200);
    assert.equal((await call(`${again.url}/endpoints/both/score`, { body: '{}', headers: bearer(KEY1) })).status, 401);
  } finally {
    await again.close();
  }
});

test('the admin API takes an Entra token with an admin role and redacts keys', async () => {
  await ready;
  const adminToken = await entra.sign({ roles: ['Switchyard.Admin'] });
  const r = await call(`${gw.adminUrl}/admin/endpoints/both`, { headers: bearer(adminToken) });
  assert.equal(r.status, 200);
  assert.ok(r.headers.etag);
  const body = r.json<{ config: { keys: Record<string, string> } }>();
  assert.deepEqual(body.config.keys, { primary: '<redacted>', secondary: '<redacted>' });
  assert.ok(!r.body.includes(KEY2));
  const scorer = await entra.sign({ roles: ['Scorer'] });
  assert.equal((await call(`${gw.adminUrl}/admin/endpoints`, { headers: bearer(scorer) })).status, 403);
});

test('a key that cannot be stored is not made effective', async () => {
  await ready;
  // A state path under a regular file can never be created (ENOTDIR), whoever runs the test.
  const blockerDir = mkdtempSync(join(tmpdir(), 'switchyard-test-'));
  const blocker = join(blockerDir, 'a-file');
  writeFileSync(blocker, '');
  const readOnly = await startGateway({ ...doc, state: { file: join(blocker, 'state.json') } });
  try {
    const r = await call(`${readOnly.adminUrl}/admin/endpoints/both/keys/regenerate`, { body: '{"key_type":"secondary"}', headers: bearer(ADMIN) });
    assert.equal(r.status, 503);
    assert.equal(r.json<{ error: { code: string } }>().error.code, 'LiveStoreUnavailable');
    assert.match(r.json<{ error: { message: string } }>().error.message, /could not be stored.*nothing changed/);
    assert.equal((await call(`${readOnly.url}/endpoints/both/score`, { body: '{}', headers: bearer(KEY2) })).status, 200);
  } finally {
    await readOnly.close();
    rmSync(blockerDir, { recursive: true, force: true });
  }
});

test('concurrent regenerations both land, in memory and in the state file', async () => {
  await ready;
  const url = `${gw.adminUrl}/admin/endpoints/both/keys/regenerate`;
  const [p, s] = await Promise.all(['primary', 'secondary'].map((k) => call(url, { body: JSON.stringify({ key_type: k }), headers: bearer(ADMIN) })));
  assert.equal(p?.status, 200);
  assert.equal(s?.status, 200);
  const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { live: { keys: { both: Record<string, unknown> } } };
  assert.deepEqual(Object.keys(state.live.keys.both).sort(), ['primary', 'secondary']);
  for (const r of [p!, s!]) {
    assert.equal((await score('both', bearer(r.json<{ key: string }>().key))).status, 200);
  }
});

test('a key regeneration after a reload keeps the reloaded entra settings', async () => {
  await ready;
  const widened = structuredClone(doc) as { entra: { tenants: string[] } };
  widened.entra.tenants = [TENANT, OTHER_TENANT];
  const g = await startGateway(doc);
  try {
    g.gw.apply(config(withTestListeners(widened)));
    const foreign = await entra.sign({ roles: ['Scorer'], tid: OTHER_TENANT });
    const at = (t: string) => call(`${g.url}/endpoints/tok/score`, { body: '{}', headers: bearer(t) });
    assert.equal((await at(foreign)).status, 200, 'the added tenant is allowed after the reload');
    const r = await call(`${g.adminUrl}/admin/endpoints/both/keys/regenerate`, { body: '{"key_type":"primary"}', headers: bearer(ADMIN) });
    assert.equal(r.status, 200);
    assert.equal((await at(await entra.sign({ roles: ['Scorer'], tid: OTHER_TENANT, oid: 'x2' }))).status, 200, 'still allowed after the regeneration');
  } finally {
    await g.close();
  }
});

test('admin keys may be given as sha256 digests', async () => {
  await ready;
  // A short "digest" used to pass and make timingSafeEqual throw on every admin call.
  const bad = parseConfig({ admin: { keys: ['sha256:abcd'] } });
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : formatIssues(bad.issues), /^admin\.keys\.0: /m);
  const digest = `sha256:${createHash('sha256').update('digest-admin').digest('hex')}`;
  const g = await startGateway({ ...doc, admin: { keys: [digest] } });
  try {
    assert.equal((await call(`${g.adminUrl}/admin/endpoints`, { headers: bearer('digest-admin') })).status, 200);
    assert.equal((await call(`${g.adminUrl}/admin/endpoints`, { headers: bearer(digest) })).status, 401, 'the digest itself is no key');
  } finally {
    await g.close();
  }
});
