import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { deadOrigin, startGateway, startUpstream, withTestListeners, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call } from '../helpers/http.ts';

// The live-ops CLI (SPEC §5, issue 12) as a user runs it: child processes on this Node against
// a real gateway started from a config file (so API edits go to its state file), in front of
// real model servers. The tests run in order, each on the state the previous ones left.

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));
const ADMIN = 'cli-live-admin-7d2e90b4c1';
const WRONG = 'cli-live-wrong-3a9f5c0e86';
const KEY = 'cli-live-key-5b1d8e2f0a';

interface Run { readonly args: readonly string[]; readonly code: number | null; readonly stdout: string; readonly stderr: string }

/** Every run, for the check that no key was ever printed. */
const runs: Run[] = [];

function run(args: string[], env: { url?: string | undefined; key?: string | undefined } = { url: undefined, key: ADMIN }): Promise<Run> {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.SWITCHYARD_ADMIN_URL;
  delete e.SWITCHYARD_ADMIN_KEY;
  const url = 'url' in env && env.url !== undefined ? env.url : gw.adminUrl;
  e.SWITCHYARD_ADMIN_URL = url;
  if (env.key !== undefined) e.SWITCHYARD_ADMIN_KEY = env.key;
  // Node's compile cache: the ~30 runs share one stripping and compiling of the CLI's modules (half their CPU).
  e.NODE_COMPILE_CACHE = join(dir, 'compile-cache');
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: e, timeout: 20_000 }, (err, stdout, stderr) => {
      const r = { args, code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr };
      runs.push(r);
      resolve(r);
    });
  });
}

let blue: TestUpstream;
let green: TestUpstream;
let shadow: TestUpstream;
let gw: TestGateway;
let dir: string;

const DOC = (): Record<string, unknown> => withTestListeners({
  admin: { keys: [ADMIN] },
  endpoints: {
    cars: {
      keys: { primary: KEY },
      traffic: { blue: 100 },
      deployments: { blue: { instances: [blue.url] }, green: { instances: [green.url] }, shadow: { instances: [shadow.url] } },
    },
    dogs: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [blue.url] } } },
  },
});

const score = (endpoint: string, key = KEY, headers: Record<string, string> = {}) =>
  call(`${gw.url}/endpoints/${endpoint}/score`, { body: '{"x":1}', headers: { ...bearer(key), ...headers } });

interface View { name: string; etag: string; source: string; config: { traffic: Record<string, number>; mirror_traffic: Record<string, number>; keys?: Record<string, string> } }

async function view(name: string): Promise<{ status: number; body: View }> {
  const r = await call(`${gw.adminUrl}/admin/endpoints/${name}`, { headers: bearer(ADMIN) });
  return { status: r.status, body: r.status === 200 ? r.json<View>() : (undefined as unknown as View) };
}

async function docVersion(): Promise<number> {
  return (await call(`${gw.adminUrl}/admin/audit`, { headers: bearer(ADMIN) })).json<{ doc_version: number }>().doc_version;
}

async function file(name: string, text: string): Promise<string> {
  const f = join(dir, name);
  await writeFile(f, text);
  return f;
}

before(async () => {
  [blue, green, shadow] = await Promise.all([startUpstream('blue'), startUpstream('green'), startUpstream('shadow')]);
  dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-live-'));
  const doc = DOC();
  const configPath = await file('gateway.yaml', stringify(doc));
  gw = await startGateway(doc, { configPath });
});

after(async () => {
  await gw?.close();
  await Promise.all([blue?.close(), green?.close(), shadow?.close()]);
  await rm(dir, { recursive: true, force: true });
});

test('validate --diff: what loading FILE would change in the running gateway, field by field; nothing changes', async () => {
  const doc = DOC() as { endpoints: Record<string, Record<string, unknown>> };
  doc.endpoints.cars!.traffic = { blue: 90, green: 10 };
  doc.endpoints.vans = { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [blue.url] } } };
  delete doc.endpoints.dogs;
  const f = await file('plan.yaml', stringify(doc));
  const version = await docVersion();
  const r = await run(['validate', f, '--diff']);
  assert.equal(r.code, 0, r.stderr);
  // The same key in the file and the gateway is no change (keys compare as present or absent).
  assert.equal(r.stdout, [
    `${f}: ok (2 endpoints)`,
    '~ endpoints.cars.traffic.blue: 100 -> 90',
    '+ endpoints.cars.traffic.green: 10',
    '- endpoints.dogs',
    '+ endpoints.vans',
    '',
  ].join('\n'));
  const json = await run(['validate', f, '--diff', '--output', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const plan = JSON.parse(json.stdout) as { ok: boolean; changes: { op: string; path: string; before?: unknown; after?: unknown }[] };
  assert.deepEqual(plan.changes[0], { op: '~', path: 'endpoints.cars.traffic.blue', before: 100, after: 90 });
  assert.equal(plan.changes.length, 4);

  // An invalid file: its problems, and the gateway is not asked (it is not even up there).
  const bad = await run(['validate', await file('bad.yaml', 'endpoints:\n  cars: { traffic: { blue: 90 } }\n'), '--diff'], { url: await deadOrigin(), key: ADMIN });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^endpoints\.cars\.deployments: /m);
  assert.equal(await docVersion(), version, 'nothing was written');
});

test('traffic: sets the named weights and 0 for the rest, prints the split; the gateway routes by it', async () => {
  const r = await run(['traffic', 'cars', 'blue=90', 'green=10']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'cars: traffic blue 90%, green 10%, shadow 0%\n');
  assert.equal(r.stderr, '');
  assert.deepEqual((await view('cars')).body.config.traffic, { blue: 90, green: 10 });

  const json = await run(['traffic', 'cars', 'green=100', '--output', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const v = JSON.parse(json.stdout) as View;
  assert.equal(v.name, 'cars');
  assert.deepEqual(v.config.traffic, { blue: 0, green: 100 });
  assert.equal(v.config.keys?.primary, '<redacted>');
  for (let i = 0; i < 3; i++) assert.equal((await score('cars')).json<{ deployment: string }>().deployment, 'green');
});

test('traffic: bad weights, unknown deployments and endpoints are refused with one clear line; the split it has is not written again', async () => {
  const version = await docVersion();
  // (The other argument checks are unit tests of weights.ts.)
  const [sum, unknownDep, unknownEp, same] = await Promise.all([
    run(['traffic', 'cars', 'blue=90']),
    run(['traffic', 'cars', 'blue=90', 'purple=10']),
    run(['traffic', 'trucks', 'blue=100']),
    run(['traffic', 'cars', 'green=100', 'shadow=0']),
  ]);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, 'cars: traffic blue 0%, green 100%, shadow 0% (unchanged)\n');
  assert.equal(sum.code, 2);
  assert.match(sum.stderr, /^switchyard traffic: the weights must sum to 100 \(or 0\), got 90; deployments not named get 0\nusage: switchyard traffic /);
  assert.equal(unknownDep.code, 2);
  assert.match(unknownDep.stderr, /^switchyard traffic: endpoint cars has no deployment named "purple" \(it has: blue, green, shadow\)\n/);
  assert.equal(unknownEp.code, 1);
  assert.equal(unknownEp.stderr, `switchyard traffic: no endpoint named "trucks" on the gateway at ${gw.adminUrl} (it has: cars, dogs)\n`);
  for (const r of [sum, unknownDep, unknownEp]) assert.equal(r.stdout, '');
  assert.equal(await docVersion(), version);
});

test('mirror: one target, not a deployment with live traffic (nor given live traffic while it is one); --off stops it', async () => {
  const on = await run(['mirror', 'cars', 'shadow=10']);
  assert.equal(on.code, 0, on.stderr);
  assert.equal(on.stdout, 'cars: mirroring 10% of live traffic to shadow\n');
  assert.deepEqual((await view('cars')).body.config.mirror_traffic, { shadow: 10 });

  // Green has all the live traffic (the test before); the mirror target cannot get live traffic while it is one.
  const [live, toShadow] = await Promise.all([run(['mirror', 'cars', 'green=10']), run(['traffic', 'cars', 'shadow=100'])]);
  assert.equal(live.code, 2);
  assert.match(live.stderr, /^switchyard mirror: green has live traffic \(100%\); a deployment with live traffic cannot also be the mirror/);
  assert.equal(toShadow.code, 2);
  assert.match(toShadow.stderr, /shadow is the mirror target/);

  const off = await run(['mirror', 'cars', '--off', '--output', 'json']);
  assert.equal(off.code, 0, off.stderr);
  assert.deepEqual((JSON.parse(off.stdout) as View).config.mirror_traffic, { shadow: 0 });
});

test('get → edit → apply -f round-trips; --dry-run prints the changes and stores nothing; keys given as <redacted> stay', async () => {
  const got = await run(['get', 'cars']);
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stdout, /^# switchyard get cars from http:\/\/127\.0\.0\.1:\d+ \(source: api\)\n# keys show as <redacted>/);
  assert.match(got.stdout, /^endpoints:\n {2}cars:\n/m);
  const doc = parse(got.stdout) as { endpoints: { cars: { traffic: Record<string, number>; keys: Record<string, string> } } };
  assert.deepEqual(doc.endpoints.cars.keys, { primary: '<redacted>' });
  // Applied unedited: nothing to do.
  const same = await file('cars-same.yaml', got.stdout);
  const unchanged = await run(['apply', '-f', same]);
  assert.equal(unchanged.code, 0, unchanged.stderr);
  assert.equal(unchanged.stdout, 'cars: unchanged\n');

  doc.endpoints.cars.traffic = { blue: 50, green: 50 };
  const edited = await file('cars.yaml', stringify(doc));
  const version = await docVersion();
  const dry = await run(['apply', '-f', edited, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.stdout, '~ endpoints.cars.traffic.blue: 0 -> 50\n~ endpoints.cars.traffic.green: 100 -> 50\n(dry run: nothing was written)\n');
  assert.equal(await docVersion(), version, 'a dry run stores nothing');
  assert.deepEqual((await view('cars')).body.config.traffic, { blue: 0, green: 100 });

  const applied = await run(['apply', '-f', edited]);
  assert.equal(applied.code, 0, applied.stderr);
  assert.equal(applied.stdout, 'cars: replaced (2 changes)\n');
  assert.deepEqual((await view('cars')).body.config.traffic, { blue: 50, green: 50 });
  assert.equal((await score('cars')).status, 200, 'the key given as <redacted> still works');

  // A new endpoint is created; --output json says so.
  const vans = await file('vans.yaml', `endpoints:\n  vans:\n    keys: { primary: ${KEY} }\n    traffic: { blue: 100 }\n    deployments: { blue: { instances: ["${blue.url}"] } }\n`);
  const created = await run(['apply', '--file', vans, '--output', 'json']);
  assert.equal(created.code, 0, created.stderr);
  assert.deepEqual((JSON.parse(created.stdout) as { applied: { name: string; result: string }[] }).applied.map((a) => [a.name, a.result]), [['vans', 'created']]);
  assert.equal((await score('vans')).status, 200);
});

test('apply: an invalid endpoint gets every field error and nothing is written, not even the valid ones; file-only sections are refused', async () => {
  const version = await docVersion();
  const f = await file('mixed.yaml', [
    'endpoints:',
    '  bikes:',
    `    keys: { primary: ${KEY} }`,
    '    traffic: { blue: 100 }',
    `    deployments: { blue: { instances: ["${blue.url}"] } }`,
    '  cars:',
    '    keys: { primary: <redacted> }',
    '    traffic: { blue: 90, nope: 5 }',
    `    deployments: { blue: { instances: ["${blue.url}"] } }`,
    '',
  ].join('\n'));
  const r = await run(['apply', '-f', f]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^switchyard apply: PUT \/admin\/endpoints\/cars at \S+: 400 InvalidConfig: /);
  assert.match(r.stderr, /^ {2}endpoints\.cars\.traffic: values must sum to 100 or 0, got 95$/m);
  assert.match(r.stderr, /^ {2}endpoints\.cars\.traffic\.nope: no deployment named nope$/m);
  assert.match(r.stderr, /nothing was written \(1 of 2 endpoints refused\)\n$/);
  assert.equal((await view('bikes')).status, 404);
  assert.equal(await docVersion(), version);

  const server = await run(['apply', '-f', await file('server.yaml', `server:\n  listen: { port: 8081 }\nendpoints:\n  cars: { traffic: {} }\n`)]);
  assert.equal(server.code, 1);
  assert.match(server.stderr, /^switchyard apply: \S+server\.yaml: server: only endpoints can be applied through the admin API; server is set in the gateway's config file/);
});

test('delete: --dry-run shows the endpoint going and keeps it; then it is gone', async () => {
  const dry = await run(['delete', 'dogs', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(dry.stdout, '- endpoints.dogs\n(dry run: nothing was deleted)\n');
  assert.equal((await score('dogs')).status, 200);
  const del = await run(['delete', 'dogs']);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(del.stdout, 'deleted endpoint dogs\n');
  assert.equal((await score('dogs')).status, 404);
  const again = await run(['delete', 'dogs']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^switchyard delete: no endpoint named "dogs" on the gateway at \S+ \(it has: cars, vans\)\n$/);
});

test('keys regenerate prints the new key alone; it authenticates and the old one gets 401', async () => {
  const r = await run(['keys', 'regenerate', 'cars', 'primary']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /^[A-Za-z0-9_-]{20,}\n$/);
  const fresh = r.stdout.trim();
  assert.equal((await score('cars', fresh)).status, 200);
  assert.equal((await score('cars', KEY)).status, 401);
  assert.equal((await score('vans', KEY)).status, 200, 'another endpoint\'s key is untouched');

  const json = await run(['keys', 'regenerate', 'cars', 'secondary', '--output', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const body = JSON.parse(json.stdout) as { endpoint: string; key_type: string; key: string };
  assert.deepEqual([body.endpoint, body.key_type], ['cars', 'secondary']);
  assert.equal((await score('cars', body.key)).status, 200);
  assert.equal((await score('cars', fresh)).status, 200, 'primary still works');
  runs.splice(runs.indexOf(r), 1);
  runs.splice(runs.indexOf(json), 1);
});

test('audit: every change, newest first, who made it, no key in it', async () => {
  const r = await run(['audit']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^VERSION\s+AT\s+BY\s+ACTION\s+ENDPOINT\s+CHANGE$/);
  assert.match(lines[1] ?? '', /^\d+→\d+\s+\S+Z\s+admin_key:\S+\s+regenerate_key\s+cars\s+/);
  assert.ok(lines.some((l) => /\bdelete\s+dogs\b/.test(l)));
  assert.ok(lines.some((l) => /\bcreate\s+vans\b/.test(l)));
  assert.ok(lines.some((l) => /\bpatch\s+cars\s+\{"traffic":\{"blue":90,"green":10\}\}/.test(l)));
  const json = await run(['audit', 'vans', '--output', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const entries = (JSON.parse(json.stdout) as { entries: { endpoint: string; action: string }[] }).entries;
  assert.deepEqual(entries.map((e) => [e.endpoint, e.action]), [['vans', 'create']]);
});

test('a wrong or missing admin key, a gateway that is down, a bad SWITCHYARD_ADMIN_URL: one line, non-zero, nothing changed', async () => {
  const version = await docVersion();
  const dead = await deadOrigin();
  const [wrong, wrongApply, unset, down, downDelete, badUrl] = await Promise.all([
    run(['traffic', 'cars', 'blue=100'], { key: WRONG }),
    run(['apply', '-f', join(dir, 'mixed.yaml')], { key: WRONG }),
    run(['get', 'cars'], { key: undefined }),
    run(['keys', 'regenerate', 'cars', 'primary'], { url: dead, key: ADMIN }),
    run(['delete', 'cars'], { url: dead, key: ADMIN }),
    run(['get', 'cars'], { url: 'ftp://example', key: ADMIN }),
  ]);
  for (const r of [wrong, wrongApply]) {
    assert.equal(r.code, 1, r.args.join(' '));
    // One line: apply stops at its first endpoint (the others would get the same answer).
    assert.match(r.stderr, new RegExp(`^switchyard ${r.args[0]}: the admin API at \\S+ refused SWITCHYARD_ADMIN_KEY \\(401\\)[^\\n]*\\n$`));
  }
  assert.equal(unset.code, 1);
  assert.match(unset.stderr, /^switchyard get: the admin API at \S+ needs an admin key \(401\): SWITCHYARD_ADMIN_KEY is not set[^\n]*\n$/);
  for (const r of [down, downDelete]) {
    assert.equal(r.code, 1, r.args.join(' '));
    assert.match(r.stderr, new RegExp(`^switchyard ${r.args[0]}: cannot reach the admin API at ${dead.replace(/\./g, '\\.')} \\(ECONNREFUSED\\)[^\\n]*\\n$`));
    assert.equal(r.stdout, '');
  }
  assert.equal(badUrl.code, 2);
  assert.match(badUrl.stderr, /^switchyard get: SWITCHYARD_ADMIN_URL must be an http:\/\/ or https:\/\/ URL/);
  assert.equal(await docVersion(), version);
  assert.equal((await score('vans')).status, 200);
});

test('no key, admin key or wrong key was printed by any command (except the keys regenerate printed, checked above)', () => {
  assert.ok(runs.length > 25);
  for (const r of runs) {
    for (const secret of [KEY, ADMIN, WRONG]) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `${r.args.join(' ')} printed a key`);
    }
  }
});
