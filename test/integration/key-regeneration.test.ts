import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { formatIssues, loadConfigFile } from '../../config/load.ts';
import { Gateway, stateFilePath } from '../../gateway/gateway.ts';
import { bearer, call } from '../helpers/http.ts';
import { LogCapture, startUpstream, type TestUpstream } from '../helpers/gateway.ts';

// A regenerated key against hand edits of the config file (issue 7 item 12): a real gateway
// started from a file, reloaded after each edit, called with real requests.
const K0 = 'file-key-zero-0000';
const K2 = 'file-key-two-2222';
const ADMIN = 'admin-key-for-regeneration';

let dir: string;
let model: TestUpstream;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-keyregen-'));
  model = await startUpstream('blue');
});
after(async () => {
  await model.close();
  await rm(dir, { recursive: true, force: true });
});

/** The config file with `primary` as the endpoint's primary key (JSON is YAML too). */
function writeConfig(file: string, primary: string): Promise<void> {
  return writeFile(file, JSON.stringify({
    server: { listen: { host: '127.0.0.1', port: 0 }, admin_listen: { host: '127.0.0.1', port: 0 } },
    admin: { keys: [ADMIN] },
    endpoints: {
      cars: { auth_mode: 'key', keys: { primary }, traffic: { blue: 100 }, deployments: { blue: { instances: [model.url] } } },
    },
  }, null, 2));
}

interface Running {
  readonly gw: Gateway;
  readonly logs: LogCapture;
  /** Status of a /score call with `key`. */
  score(key: string): Promise<number>;
}

/** `switchyard serve` as the CLI starts it: from the file, state next to it. */
async function start(file: string): Promise<Running> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) throw new Error(formatIssues(loaded.issues));
  const logs = new LogCapture();
  const gw = await Gateway.start({ config: loaded.config, configPath: file, log: pino({ level: 'info' }, logs) });
  const url = `http://127.0.0.1:${gw.addresses.public.port}/endpoints/cars/score`;
  return { gw, logs, score: async (key) => (await call(url, { body: '{}', headers: bearer(key) })).status };
}

async function regenerate(r: Running): Promise<string> {
  const res = await call(`http://127.0.0.1:${r.gw.addresses.admin.port}/admin/endpoints/cars/keys/regenerate`, {
    body: '{"key_type":"primary"}',
    headers: bearer(ADMIN),
  });
  assert.equal(res.status, 200, res.body);
  return res.json<{ key: string }>().key;
}

async function reload(r: Running, file: string, primary: string): Promise<void> {
  await writeConfig(file, primary);
  const result = await r.gw.reload();
  assert.ok(result.ok, result.ok ? '' : result.error);
}

test('a regenerated key superseded by a file edit stays dead when the file is reverted, across a restart', async () => {
  const file = join(dir, 'superseded.json');
  await writeConfig(file, K0);
  const first = await start(file);
  let k1: string;
  try {
    k1 = await regenerate(first);
    assert.equal(await first.score(k1), 200, 'K1 works once regenerated');
    assert.equal(await first.score(K0), 401, 'K0 is revoked by the regeneration');

    await reload(first, file, K2);
    assert.equal(await first.score(K2), 200, 'the file changed: its key K2 is in force');
    assert.equal(await first.score(k1), 401, 'and the regenerated K1 is dropped');

    await reload(first, file, K0);
    assert.equal(await first.score(K0), 200, 'the file reverted to K0: K0 works');
    assert.equal(await first.score(k1), 401, 'K1 does not come back');
    assert.equal(await first.score(K2), 401);
    assert.ok(!first.logs.raw.some((l) => l.includes(k1) || l.includes(K0) || l.includes(K2)), 'no key in any log line');
  } finally {
    await first.gw.close();
  }
  const state = await readFile(stateFilePath(first.gw.store.current.config, file), 'utf8');
  assert.ok(!state.includes('sha256:'), `the state file no longer holds the override: ${state}`);

  const second = await start(file);
  try {
    assert.equal(await second.score(K0), 200, 'a restart on the reverted file: K0 works');
    assert.equal(await second.score(k1), 401, 'and K1 stays dead');
  } finally {
    await second.gw.close();
  }
});

test('a regenerated key survives reloads that leave its slot alone, and a restart', async () => {
  const file = join(dir, 'kept.json');
  await writeConfig(file, K0);
  const first = await start(file);
  let k1: string;
  try {
    k1 = await regenerate(first);
    await reload(first, file, K0); // same key: a reload for any other reason
    assert.equal(await first.score(k1), 200);
    assert.equal(await first.score(K0), 401);
  } finally {
    await first.gw.close();
  }
  const second = await start(file);
  try {
    assert.equal(await second.score(k1), 200);
    assert.equal(await second.score(K0), 401);
  } finally {
    await second.gw.close();
  }
});
