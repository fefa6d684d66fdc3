import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { formatIssues, loadConfigFile } from '../../config/load.ts';
import { Gateway, stateFilePath } from '../../gateway/gateway.ts';
import { assertGatewayError, bearer, call, type Reply } from '../helpers/http.ts';
import { LogCapture, startUpstream, type TestUpstream } from '../helpers/gateway.ts';

// SPEC §5's writes against a real gateway started from a file, as `switchyard serve` does:
// PUT/PATCH/DELETE, ETags and If-Match, every field error, dry runs, the audit, the state
// file beside the config (restart), and the rule between the file and the API.
const ADMIN = 'admin-key-for-live-edits';
const CARS_KEY = 'cars-file-key-0001';

let dir: string;
let blue: TestUpstream;
let green: TestUpstream;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-live-'));
  [blue, green] = await Promise.all([startUpstream('blue'), startUpstream('green')]);
});
after(async () => {
  await Promise.all([blue.close(), green.close()]);
  await rm(dir, { recursive: true, force: true });
});

function fileDoc(traffic: Record<string, number>): Record<string, unknown> {
  return {
    server: { listen: { host: '127.0.0.1', port: 0 }, admin_listen: { host: '127.0.0.1', port: 0 } },
    admin: { keys: [ADMIN] },
    endpoints: {
      cars: {
        keys: { primary: CARS_KEY },
        traffic,
        deployments: { blue: { instances: [blue.url] }, green: { instances: [green.url] } },
      },
    },
  };
}

interface Running {
  readonly gw: Gateway;
  readonly logs: LogCapture;
  admin(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  /** Which deployment answers a scoring call. */
  score(key?: string): Promise<{ status: number; deployment: string | undefined }>;
}

async function start(file: string): Promise<Running> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new Error(formatIssues(loaded.issues));
  const logs = new LogCapture();
  const gw = await Gateway.start({ config: loaded.config, raw: loaded.raw, configPath: file, log: pino({ level: 'info' }, logs) });
  const adminUrl = `http://127.0.0.1:${gw.addresses.admin.port}`;
  const scoreUrl = `http://127.0.0.1:${gw.addresses.public.port}/endpoints/cars/score`;
  return {
    gw,
    logs,
    admin: (method, path, body, headers) => call(`${adminUrl}${path}`, {
      method,
      headers: { ...bearer(ADMIN), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    }),
    score: async (key = CARS_KEY) => {
      const r = await call(scoreUrl, { body: '{}', headers: bearer(key) });
      return { status: r.status, deployment: r.headers['azureml-model-deployment'] as string | undefined };
    },
  };
}

async function configFile(name: string, traffic: Record<string, number>): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(fileDoc(traffic)));
  return file;
}

test('PATCH shifts traffic at once, with ETags, If-Match, the audit and no key in the state file; a restart keeps it', async () => {
  const file = await configFile('patch', { blue: 100, green: 0 });
  const first = await start(file);
  try {
    const got = await first.admin('GET', '/admin/endpoints/cars');
    assert.equal(got.status, 200);
    const etag = got.headers.etag as string;
    assert.match(etag, /^"[\w-]{22}"$/);
    assert.equal(got.json<{ source: string }>().source, 'file');

    const patched = await first.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 0, green: 100 } }, { 'if-match': etag });
    assert.equal(patched.status, 200, patched.body);
    assert.notEqual(patched.headers.etag, etag);
    assert.equal(patched.json<{ source: string }>().source, 'api');
    assert.equal((await first.score()).deployment, 'green', 'the next request follows the edit');

    // The same ETag again is stale now: 412, and nothing changed.
    const stale = await first.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 100, green: 0 } }, { 'if-match': etag });
    assertGatewayError(stale, 412, 'PreconditionFailed');
    assert.equal((await first.score()).deployment, 'green');

    const audit = (await first.admin('GET', '/admin/audit')).json<{ entries: { action: string; by: string; version: number; previous_version: number; change: unknown }[] }>();
    assert.equal(audit.entries.length, 1);
    assert.deepEqual(audit.entries[0], { ...audit.entries[0], action: 'patch', by: 'admin_key:admin-key-1', version: 1, previous_version: 0, change: { traffic: { blue: 0, green: 100 } } });
    assert.equal(first.logs.lines.filter((l) => l.msg === 'config changed').length, 1, 'one audit line per change');
  } finally {
    await first.gw.close();
  }
  const state = stateFilePath(first.gw.store.current.config, file);
  const text = await readFile(state, 'utf8');
  assert.ok(!text.includes(CARS_KEY) && !text.includes(ADMIN), 'no key in clear in the state file');
  assert.ok(text.includes('sha256:'), 'the endpoint key is kept as its digest');
  assert.equal((await stat(state)).mode & 0o777, 0o600);

  const second = await start(file);
  try {
    assert.equal((await second.score()).deployment, 'green', 'a restart keeps the edit');
    assert.equal((await second.score()).status, 200, 'and the key still works from its digest');
  } finally {
    await second.gw.close();
  }
});

test('invalid edits get 400 with every field error and change nothing; Azure rules hold', async () => {
  const file = await configFile('invalid', { blue: 100, green: 0 });
  const r = await start(file);
  try {
    const before = (await r.admin('GET', '/admin/endpoints/cars')).headers.etag;
    const bad = await r.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 50, green: 40 }, mirror_traffic: { blue: 10, green: 60 } });
    const body = assertGatewayError(bad, 400, 'InvalidConfig');
    const paths = (body.error.details ?? []).map((d) => d.path).sort();
    // Over 50, and a live deployment: two problems at one path.
    assert.deepEqual(paths, ['endpoints.cars.mirror_traffic', 'endpoints.cars.mirror_traffic.blue', 'endpoints.cars.mirror_traffic.green', 'endpoints.cars.mirror_traffic.green', 'endpoints.cars.traffic']);

    // A deployment with live traffic cannot be removed; at 0 it can.
    const live = await r.admin('PATCH', '/admin/endpoints/cars', { traffic: { green: null }, deployments: { blue: null } });
    assertGatewayError(live, 400, 'InvalidConfig');
    assert.match(live.body, /endpoints\.cars\.deployments\.blue.*set its traffic to 0 first/);
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', { traffic: { green: null }, deployments: { green: null } })).status, 200);

    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/cars', 'not json'), 400, 'BadRequest');
    assertGatewayError(await r.admin('PUT', '/admin/endpoints/cars', [1, 2]), 400, 'BadRequest');
    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/nope', { traffic: {} }), 404, 'EndpointNotFound');
    assertGatewayError(await r.admin('DELETE', '/admin/endpoints/nope'), 404, 'EndpointNotFound');
    assertGatewayError(await r.admin('DELETE', '/admin/endpoints/cars'), 400, 'InvalidConfig'); // the last endpoint
    assertGatewayError(await call(`http://127.0.0.1:${r.gw.addresses.admin.port}/admin/endpoints/cars`, { method: 'DELETE' }), 401, 'Unauthorized');
    assert.notEqual((await r.admin('GET', '/admin/endpoints/cars')).headers.etag, before);
    assert.equal((await r.admin('GET', '/admin/audit')).json<{ entries: unknown[] }>().entries.length, 1, 'only the valid edit is audited');
  } finally {
    await r.gw.close();
  }
});

test('PUT creates and replaces (a "<redacted>" key keeps the key), dry runs store nothing, DELETE removes', async () => {
  const file = await configFile('put', { blue: 100, green: 0 });
  const r = await start(file);
  try {
    const dogs = { keys: { primary: 'dogs-key-000000001' }, traffic: { blue: 100 }, deployments: { blue: { instances: [blue.url] } } };
    const dry = await r.admin('PUT', '/admin/endpoints/dogs?dry_run=true', dogs);
    assert.equal(dry.status, 200, dry.body);
    assert.deepEqual(dry.json<{ before: unknown; after: { keys: unknown } }>().before, null);
    assert.deepEqual(dry.json<{ after: { keys: unknown } }>().after.keys, { primary: '<redacted>' });
    assertGatewayError(await r.admin('GET', '/admin/endpoints/dogs'), 404, 'EndpointNotFound');

    const created = await r.admin('PUT', '/admin/endpoints/dogs', dogs);
    assert.equal(created.status, 201, created.body);
    const dogsUrl = `http://127.0.0.1:${r.gw.addresses.public.port}/endpoints/dogs/score`;
    assert.equal((await call(dogsUrl, { body: '{}', headers: bearer('dogs-key-000000001') })).status, 200);

    // get → edit → apply: the view's "<redacted>" keeps the key.
    const view = (await r.admin('GET', '/admin/endpoints/dogs')).json<{ config: Record<string, unknown> }>();
    const replaced = await r.admin('PUT', '/admin/endpoints/dogs', { ...view.config, roles: ['reader'] });
    assert.equal(replaced.status, 200, replaced.body);
    assert.equal((await call(dogsUrl, { body: '{}', headers: bearer('dogs-key-000000001') })).status, 200);

    assert.equal((await r.admin('DELETE', '/admin/endpoints/dogs?dry_run=true')).status, 200);
    assert.equal((await call(dogsUrl, { body: '{}', headers: bearer('dogs-key-000000001') })).status, 200, 'a dry run deletes nothing');
    const deleted = await r.admin('DELETE', '/admin/endpoints/dogs');
    assert.equal(deleted.status, 200, deleted.body);
    assertGatewayError(await call(dogsUrl, { body: '{}', headers: bearer('dogs-key-000000001') }), 404, 'EndpointNotFound');
    const actions = (await r.admin('GET', '/admin/audit')).json<{ entries: { action: string; change: unknown }[] }>().entries.map((e) => e.action);
    assert.deepEqual(actions, ['delete', 'replace', 'create']);
    assert.ok(!r.logs.raw.some((l) => l.includes('dogs-key-000000001')), 'no key in any log line or audit entry');
  } finally {
    await r.gw.close();
  }
});

test('concurrent PATCHes with the same ETag: exactly one wins, the other gets 412', async () => {
  const file = await configFile('race', { blue: 100, green: 0 });
  const r = await start(file);
  try {
    const etag = (await r.admin('GET', '/admin/endpoints/cars')).headers.etag as string;
    const results = await Promise.all([
      r.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 0, green: 100 } }, { 'if-match': etag }),
      r.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 50, green: 50 } }, { 'if-match': etag }),
    ]);
    assert.deepEqual(results.map((x) => x.status).sort(), [200, 412]);
  } finally {
    await r.gw.close();
  }
});

test('the file wins once it changes an edited endpoint; an edit of an untouched endpoint survives a reload', async () => {
  const file = await configFile('precedence', { blue: 100, green: 0 });
  const r = await start(file);
  try {
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 0, green: 100 } })).status, 200);
    // A reload that leaves `cars` as it was keeps the edit.
    const same = await r.gw.reload();
    assert.ok(same.ok);
    assert.equal((await r.score()).deployment, 'green');
    // The file changes `cars`: the file wins, and the edit is dropped for good.
    await writeFile(file, JSON.stringify(fileDoc({ blue: 100 })));
    assert.ok((await r.gw.reload()).ok);
    assert.equal((await r.score()).deployment, 'blue');
    await r.gw.live.settled();
    const audit = (await r.admin('GET', '/admin/audit')).json<{ entries: { action: string; by: string }[] }>().entries;
    assert.deepEqual(audit.map((e) => [e.action, e.by]), [['superseded_by_file', 'file'], ['patch', 'admin_key:admin-key-1']]);
    // Reverting the file does not bring the edit back.
    await writeFile(file, JSON.stringify(fileDoc({ blue: 100, green: 0 })));
    assert.ok((await r.gw.reload()).ok);
    assert.equal((await r.score()).deployment, 'blue');
    assert.equal((await r.admin('GET', '/admin/endpoints/cars')).json<{ source: string }>().source, 'file');
  } finally {
    await r.gw.close();
  }
});

test('hostile and odd edits: oversized, deeply nested, __proto__, prototype names, keys that must not be stored in clear', async () => {
  const file = join(dir, 'hostile.yaml');
  // `$$` is a literal `$` in a config: the key callers send is `k-$abcdefghij`.
  // And a secondary key that is a default: the key is the default's text.
  const hostile = fileDoc({ blue: 90, green: 10 }) as { endpoints: { cars: { keys: Record<string, string> } } };
  hostile.endpoints.cars.keys = { primary: 'k-$$abcdefghij', secondary: '${SWITCHYARD_TEST_UNSET:-default-secret-123456}' };
  await writeFile(file, JSON.stringify(hostile));
  const r = await start(file);
  try {
    // A body over 1 MiB: 413, and the gateway lives on (it used to crash on the access line).
    const big = await r.admin('PUT', '/admin/endpoints/big-one', { roles: ['x'.repeat(1_100_000)] });
    assertGatewayError(big, 413, 'PayloadTooLarge');
    assert.equal((await r.admin('GET', '/admin/endpoints/cars')).status, 200);
    // Under the body limit but over an endpoint's: 400 naming the endpoint.
    const wide = await r.admin('PUT', '/admin/endpoints/wide-one', { roles: Array.from({ length: 30_000 }, (_, i) => `role-${i}`), traffic: { blue: 100 }, deployments: { blue: { instances: [blue.url] } } });
    assertGatewayError(wide, 400, 'InvalidConfig');
    const many = Array.from({ length: 257 }, (_, i) => `http://10.0.${i >> 8}.${i & 255}:5001`);
    const crowd = await r.admin('PUT', '/admin/endpoints/crowd', { keys: { primary: 'crowd-key-000000001' }, traffic: { blue: 100 }, deployments: { blue: { instances: many } } });
    assert.equal(assertGatewayError(crowd, 400, 'InvalidConfig').error.details?.[0]?.path, 'endpoints.crowd.deployments.blue.instances');
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = { a: deep };
    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/cars', deep), 400, 'BadRequest');

    // `__proto__` in a patch is a member (refused by the schema), not a way around "set it to 0 first".
    const sneaky = await r.admin('PATCH', '/admin/endpoints/cars', '{"traffic":{"blue":null,"green":100},"deployments":{"__proto__":{"blue":{}},"blue":null}}');
    assertGatewayError(sneaky, 400, 'BadRequest');
    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/cars', '{"__proto__":{"rate_limit":{"requests_per_second":1}}}'), 400, 'BadRequest');
    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/cars', '{"keys":{"__proto__":{"primary":"clear-text-secret-123456"}}}'), 400, 'BadRequest');
    // `${...}` through the API: only a key, only exactly ${NAME}; anywhere else it would read the gateway's environment.
    const leak = await r.admin('PATCH', '/admin/endpoints/cars', { sticky: { header: 'x-${HOME}' }, keys: { secondary: 'k-${HOME}' } });
    const leaked = assertGatewayError(leak, 400, 'InvalidConfig');
    assert.deepEqual((leaked.error.details ?? []).map((d) => d.path).sort(), ['endpoints.cars.keys.secondary', 'endpoints.cars.sticky.header']);
    // A key regeneration's dry run makes no key.
    const dryKey = await r.admin('POST', '/admin/endpoints/cars/keys/regenerate?dry_run=true', { key_type: 'primary' });
    assert.deepEqual(dryKey.json(), { dry_run: true, endpoint: 'cars', key_type: 'primary' });
    assert.equal((await r.score('k-$abcdefghij')).status, 200, 'the key is not rotated by a dry run');
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      assertGatewayError(await r.admin('PATCH', `/admin/endpoints/${name}`, { traffic: {} }), 404, 'EndpointNotFound');
      assertGatewayError(await r.admin('DELETE', `/admin/endpoints/${name}`), 404, 'EndpointNotFound');
      assertGatewayError(await r.admin('PUT', `/admin/endpoints/${name}`, { traffic: {}, deployments: { blue: { instances: [blue.url] } } }), 400, 'InvalidConfig');
    }
    assert.equal((await r.admin('GET', '/admin/audit')).json<{ entries: unknown[] }>().entries.length, 0, 'nothing was stored');

    // A traffic edit keeps the `$$` key as callers send it.
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', { traffic: { blue: 80, green: 20 } })).status, 200);
    assert.equal((await r.score('k-$abcdefghij')).status, 200);
    assert.equal((await r.score('k-$$abcdefghij')).status, 401);
    // The file's key that is a default was stored (with the edit) as a digest of the value; a key the schema refuses is refused.
    assert.equal((await r.score('default-secret-123456')).status, 200);
    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/cars', { keys: { secondary: ' padded-secret-123456' } }), 400, 'InvalidConfig');
    await r.gw.live.settled();
    const state = await readFile(stateFilePath(r.gw.store.current.config, file), 'utf8');
    for (const secret of ['default-secret-123456', 'padded-secret', 'abcdefghij']) assert.ok(!state.includes(secret), `${secret} is not in the state file`);
  } finally {
    await r.gw.close();
  }
});

test('If-Match compares strongly, takes the bare ETag, If-None-Match: * creates only; no-op edits store nothing', async () => {
  const file = await configFile('conditions', { blue: 100, green: 0 });
  const r = await start(file);
  try {
    const view = (await r.admin('GET', '/admin/endpoints/cars')).json<{ etag: string }>();
    assertGatewayError(await r.admin('PATCH', '/admin/endpoints/cars', { roles: ['a'] }, { 'if-match': `W/"${view.etag}"` }), 412, 'PreconditionFailed');
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', { roles: ['a'] }, { 'if-match': view.etag })).status, 200, 'the etag field as it reads in the view');
    const body = { keys: { primary: 'emus-key-0000000001' }, traffic: { blue: 100 }, deployments: { blue: { instances: [blue.url] } } };
    assertGatewayError(await r.admin('PUT', '/admin/endpoints/cars', body, { 'if-none-match': '*' }), 412, 'PreconditionFailed');
    assert.equal((await r.admin('PUT', '/admin/endpoints/emus', body, { 'if-none-match': '*' })).status, 201);

    const version = (await r.admin('GET', '/admin/audit')).json<{ doc_version: number }>().doc_version;
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', {})).status, 200);
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', { roles: ['a'] })).status, 200);
    assert.equal((await r.admin('GET', '/admin/audit')).json<{ doc_version: number }>().doc_version, version, 'edits that change nothing store nothing');
    // Back to exactly the file's endpoint: the file's again.
    assert.equal((await r.admin('PATCH', '/admin/endpoints/cars', { roles: null })).status, 200);
    assert.equal((await r.admin('GET', '/admin/endpoints/cars')).json<{ source: string }>().source, 'file');
  } finally {
    await r.gw.close();
  }
});
