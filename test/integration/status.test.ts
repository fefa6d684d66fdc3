import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deadOrigin, startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor } from '../helpers/http.ts';

// `switchyard status` (SPEC §5, issue 12's CLI, issue 11's report): the command as a user runs
// it, a child process on this Node, against a real gateway in front of real model servers.

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));
const ADMIN = 'status-test-admin-4f1c9e2a77';
const WRONG = 'status-test-wrong-0b3d5a8c19';
const KEY = 'status-test-key-0123456789';

interface Run { readonly code: number | null; readonly stdout: string; readonly stderr: string }

/** `switchyard ARGS` with SWITCHYARD_ADMIN_URL/KEY from `env` (undefined: unset). */
function run(args: string[], env: { url?: string | undefined; key?: string | undefined } = {}): Promise<Run> {
  const e: NodeJS.ProcessEnv = { ...process.env };
  delete e.SWITCHYARD_ADMIN_URL;
  delete e.SWITCHYARD_ADMIN_KEY;
  if (env.url !== undefined) e.SWITCHYARD_ADMIN_URL = env.url;
  if (env.key !== undefined) e.SWITCHYARD_ADMIN_KEY = env.key;
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: e, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

let live: TestUpstream;
let blue: TestUpstream;
let shadow: TestUpstream;
let green: TestUpstream;
let dead: string;
let gw: TestGateway;
const admin = (): { url: string; key: string } => ({ url: gw.adminUrl, key: ADMIN });

const score = (endpoint: string, headers: Record<string, string> = {}) =>
  call(`${gw.url}/endpoints/${endpoint}/score`, { body: '{"x":1}', headers: { ...bearer(KEY), ...headers } });

/** A model answering `{"deployment": name, "id": <random>}`: the id differs on every answer (noise). */
const withId = (name: string): Promise<TestUpstream> => startUpstream(name, (_req, res: ServerResponse) => {
  const text = JSON.stringify({ deployment: name, id: randomUUID() });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
});

before(async () => {
  live = await withId('blue');
  shadow = await withId('shadow');
  blue = await startUpstream('blue');
  // A model that fails every request: the 5xx rate.
  green = await startUpstream('green', (_req, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"error":"boom"}');
  });
  dead = await deadOrigin();
  gw = await startGateway({
    admin: { keys: [ADMIN] },
    endpoints: {
      cars: {
        keys: { primary: KEY },
        traffic: { blue: 100 },
        mirror_traffic: { shadow: 50 },
        mirror_compare: { noise_baseline: true },
        deployments: {
          blue: { instances: [live.url], readiness_probe: { path: '/healthz', period: 60 } },
          shadow: { instances: [shadow.url] },
        },
      },
      bikes: {
        keys: { primary: KEY },
        traffic: { blue: 100, green: 0 },
        // Never ejected for its 500s: every pinned request reaches it.
        deployments: { blue: { instances: [blue.url] }, green: { instances: [green.url], outlier_detection: { max_ejection_percent: 0 } } },
      },
      vans: {
        keys: { primary: KEY },
        traffic: { blue: 100 },
        deployments: {
          blue: { instances: [blue.url, dead], outlier_detection: { consecutive_failures: 1, base_ejection_time_s: 600 } },
        },
      },
    },
  });
  // 20 split requests to cars: 10 mirrored (50%), each answered differently by the shadow;
  // the first mirrored one also gets a second live copy, whose random id is learned as noise.
  for (let i = 0; i < 20; i++) assert.equal((await score('cars')).status, 200);
  await waitFor(async () => {
    const r = await call(`${gw.adminUrl}/admin/endpoints/cars/mirror`, { headers: bearer(ADMIN) });
    const rep = r.json<{ mirrored: number; noise_baseline: { pairs: number } | null }>();
    return rep.mirrored === 10 && rep.noise_baseline?.pairs === 1;
  }, 'the 10 mirrored copies and the baseline pair compared');
  // vans: the dead instance is ejected after its first failure.
  await waitFor(async () => {
    await score('vans');
    const r = await call(`${gw.adminUrl}/admin/endpoints/vans`, { headers: bearer(ADMIN) });
    return r.body.includes('"ejected":true');
  }, 'the dead vans instance ejected');
});

after(async () => {
  await gw.close();
  await Promise.all([live.close(), blue.close(), shadow.close(), green.close()]);
});

/** One endpoint's part of the table. */
function block(text: string, endpoint: string): string {
  const start = text.indexOf(`\nendpoint ${endpoint}`);
  assert.ok(start >= 0, `endpoint ${endpoint} in:\n${text}`);
  const end = text.indexOf('\nendpoint ', start + 1);
  return text.slice(start + 1, end < 0 ? undefined : end);
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Keep sending while `during` runs: pinned cars→blue (never mirrored), bikes→green (500s), and a bad key. */
async function underLoad<T>(during: () => Promise<T>): Promise<T> {
  let done = false;
  const load = (async () => {
    while (!done) {
      await score('cars', { 'azureml-model-deployment': 'blue' });
      await score('bikes', { 'azureml-model-deployment': 'green' });
      await call(`${gw.url}/endpoints/bikes/score`, { body: '{}', headers: bearer(WRONG) });
    }
  })();
  try {
    return await during();
  } finally {
    done = true;
    await load;
  }
}

test('status: a table per endpoint of weights, mirror, instance health, probes, ejections and the shadow report', async () => {
  const r = await run(['status', '--interval', '0'], admin());
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, new RegExp(`^gateway ${esc(gw.adminUrl)} · rates skipped \\(--interval 0\\)\\n`));

  const cars = block(r.stdout, 'cars');
  assert.match(cars, /^endpoint cars\n {2}DEPLOYMENT {2}TRAFFIC {2}MIRROR {2}READY {2}EJECTED {2}IN FLIGHT {2}REQ\/S {2}5XX RATE\n/);
  assert.match(cars, /^ {2}blue\s+100%\s+-\s+1\/1\s+0\s+0\s+n\/a\s+n\/a$/m);
  assert.match(cars, /^ {2}shadow\s+0%\s+50%\s+1\/1\s+0\s+0\s+n\/a\s+n\/a$/m);
  // Instances: the probed one says how its last probe went; the other has none.
  assert.match(cars, new RegExp(`^  blue\\s+${esc(live.url)}\\s+yes\\s+-\\s+0\\s+ok 200, (just now|\\d+s ago)$`, 'm'));
  assert.match(cars, new RegExp(`^  shadow\\s+${esc(shadow.url)}\\s+yes\\s+-\\s+0\\s+no probe$`, 'm'));
  // The shadow report.
  assert.match(cars, /^ {2}mirror → shadow \(50% of split requests\), since \d{4}-\d\d-\d\dT/m);
  assert.match(cars, /^ {4}mirrored\s+10 \(0 in flight\); skipped 0 \(budget full 0, body over mirror_max_body_bytes 0\)$/m);
  assert.match(cars, /^ {4}agreement\s+0\.0% of 10 compared \(raw 0\.0%\)$/m);
  assert.match(cars, /^ {4}outcomes\s+agree 0, disagree 10, error 0, timeout 0, not compared 0$/m);
  assert.match(cars, /^ {4}latency\s+live p50 [\d.]+ ms, p99 [\d.]+ ms; shadow p50 [\d.]+ ms, p99 [\d.]+ ms$/m);
  assert.match(cars, /^ {4}shadow errors\s+0\.0% \(error or timeout, of mirrored\); answers 2xx 10$/m);
  assert.match(cars, /^ {6}FIELD\s+DIFFERS IN\s+REQUESTS\s+NOISY\s+EXAMPLE \(live → shadow\)$/m);
  assert.match(cars, /^ {4}noise baseline\s+1 live pairs \(0 skipped\); noisy: \$\.id 100\.0%$/m);
  // The fields, real differences first, then noisy ones; redacted examples only: the models'
  // answers ("blue", "shadow", the ids) never show.
  assert.match(cars, /^ {6}\$\.deployment\s+100\.0%\s+10\s+no\s+string\(4 chars, #[0-9a-f]{8}\) → string\(6 chars, #[0-9a-f]{8}\)\n {6}\$\.id\s+100\.0%\s+10\s+yes \(live 100\.0%\)\s+string\(36 chars, #[0-9a-f]{8}\) → string\(36 chars, #[0-9a-f]{8}\)$/m);
  assert.doesNotMatch(r.stdout, /"blue"|"shadow"/);

  const bikes = block(r.stdout, 'bikes');
  assert.match(bikes, /^ {2}blue\s+100%\s+-\s+1\/1\s+0\s+0\s+n\/a\s+n\/a$/m);
  assert.match(bikes, /^ {2}green\s+0%\s+-\s+1\/1\s+0\s+0\s+n\/a\s+n\/a$/m);
  assert.doesNotMatch(bikes, /mirror/, 'no mirror, no report');

  // vans: the dead instance is ejected (ready by probe, but takes no traffic: 1 of 2 ready).
  const vans = block(r.stdout, 'vans');
  assert.match(vans, /^ {2}blue\s+100%\s+-\s+1\/2\s+1\s+0\s+n\/a\s+n\/a$/m);
  assert.match(vans, new RegExp(`^  blue\\s+${esc(dead)}\\s+yes\\s+\\d\\d:\\d\\d:\\d\\dZ \\(\\d+[smh] left\\)\\s+0\\s+no probe$`, 'm'));
  assert.ok(r.stdout.indexOf('endpoint cars') < r.stdout.indexOf('endpoint bikes'), 'the gateway\'s order');
});

test('status --interval: req/s and 5xx rate per deployment from two scrapes of the gateway\'s counters', async () => {
  const r = await underLoad(() => run(['status', 'bikes', '--interval', '300'], admin()));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^gateway \S+ · rates over 0\.\d s of the counters of the process that answered\n/);
  const bikes = block(r.stdout, 'bikes');
  assert.doesNotMatch(r.stdout, /endpoint cars/, 'only the endpoint asked for');
  // Every green answer is a 500; nothing went to blue in the window (no data: n/a).
  assert.match(bikes, /^ {2}green\s+0%\s+-\s+1\/1\s+0\s+\d+\s+[1-9][\d.]*\s+100\.0%$/m);
  assert.match(bikes, /^ {2}blue\s+100%\s+-\s+1\/1\s+0\s+\d+\s+0\.0\s+n\/a$/m);
  // The bad-key requests reached no deployment: counted for the endpoint, not a deployment.
  assert.match(bikes, /^endpoint bikes: [1-9][\d.]* req\/s, 5xx \d+\.\d% \([\d.]+ req\/s refused before reaching a deployment\)$/m);
});

test('status --output json: one document with the same data, stable keys', async () => {
  const r = await underLoad(() => run(['status', '--output', 'json', '--interval', '300'], admin()));
  assert.equal(r.code, 0, r.stderr);
  interface Deployment {
    name: string; requests_per_second: number | null; error_rate: number | null;
    window: { requests: number; errors: number } | null; instances_ejected: number; instances_ready: number;
    instances: { url: string; ejected: boolean; ejected_until: string | null; last_probe: { ok: boolean; status: number | null } | null }[];
  }
  interface Endpoint {
    name: string; requests_per_second: number | null; not_routed_per_second: number | null; deployments: Deployment[];
    mirror: { mirrored: number; agreement_rate: number | null; fields: { path: string; rate: number; noisy: boolean }[] } | null;
  }
  const doc = JSON.parse(r.stdout) as { admin_url: string; at: string; rate_window_s: number; endpoints: Endpoint[] };
  assert.deepEqual(Object.keys(doc), ['admin_url', 'at', 'rate_window_s', 'endpoints']);
  assert.equal(doc.admin_url, gw.adminUrl);
  assert.ok(doc.rate_window_s >= 0.3, `window ${doc.rate_window_s}`);
  assert.deepEqual(doc.endpoints.map((e) => e.name), ['cars', 'bikes', 'vans']);
  const [cars, bikes, vans] = doc.endpoints as [Endpoint, Endpoint, Endpoint];
  assert.deepEqual(Object.keys(cars), ['name', 'requests_per_second', 'error_rate', 'window', 'not_routed_per_second', 'deployments', 'mirror']);
  const dep = (e: Endpoint, name: string): Deployment => e.deployments.find((d) => d.name === name)!;
  assert.deepEqual(Object.keys(dep(cars, 'blue')), [
    'name', 'traffic_percent', 'mirror_percent', 'readiness_probe', 'instances_total', 'instances_ready', 'instances_ejected',
    'in_flight', 'requests_per_second', 'error_rate', 'window', 'instances',
  ]);
  assert.deepEqual(Object.keys(dep(cars, 'blue').instances[0]!), ['url', 'ready', 'ejected', 'ejected_until', 'in_flight', 'last_probe']);
  assert.deepEqual(dep(cars, 'blue').instances[0]?.last_probe && { ok: dep(cars, 'blue').instances[0]!.last_probe!.ok, status: dep(cars, 'blue').instances[0]!.last_probe!.status }, { ok: true, status: 200 });

  // Rates: pinned cars→blue all 200; bikes→green all 500; the shadow serves no client (no data).
  assert.ok(dep(cars, 'blue').requests_per_second! > 0);
  assert.equal(dep(cars, 'blue').error_rate, 0);
  assert.equal(dep(cars, 'shadow').requests_per_second, 0);
  assert.equal(dep(cars, 'shadow').error_rate, null);
  const g = dep(bikes, 'green');
  assert.equal(g.error_rate, 1);
  assert.ok(g.window !== null && g.window.requests > 0 && g.window.errors === g.window.requests);
  assert.ok(bikes.not_routed_per_second! > 0, 'bad-key requests reached no deployment');

  // Pinned requests are never mirrored: the report still holds the 10 copies.
  assert.equal(cars.mirror?.mirrored, 10);
  assert.equal(cars.mirror?.agreement_rate, 0);
  assert.deepEqual(cars.mirror?.fields.map((f) => [f.path, f.rate, f.noisy]), [['$.deployment', 1, false], ['$.id', 1, true]]);
  assert.equal(bikes.mirror, null);

  const vb = dep(vans, 'blue');
  assert.equal(vb.instances_ejected, 1);
  assert.equal(vb.instances_ready, 1);
  const ejected = vb.instances.find((i) => i.url === dead);
  assert.ok(ejected?.ejected && ejected.ejected_until !== null && Date.parse(ejected.ejected_until) > Date.now());

  // --interval 0: the rates are null, the rest is there.
  const quick = await run(['status', 'cars', '--output', 'json', '--interval', '0'], admin());
  assert.equal(quick.code, 0, quick.stderr);
  const q = JSON.parse(quick.stdout) as { rate_window_s: number | null; endpoints: Endpoint[] };
  assert.equal(q.rate_window_s, null);
  assert.deepEqual(q.endpoints.map((e) => [e.name, e.requests_per_second, dep(e, 'blue').requests_per_second]), [['cars', null, null]]);
  assert.equal(q.endpoints[0]?.mirror?.mirrored, 10);
});

test('a missing or wrong admin key: exit 1 and a one-line message that never shows the key', async () => {
  const [none, wrong, wrongOne] = await Promise.all([
    run(['status', '--interval', '0'], { url: gw.adminUrl }),
    run(['status', '--interval', '0'], { url: gw.adminUrl, key: WRONG }),
    // Authentication comes first: a wrong key on an unknown endpoint is a 401, not a 404.
    run(['status', 'nope', '--interval', '0', '--output', 'json'], { url: gw.adminUrl, key: WRONG }),
  ]);
  assert.equal(none.code, 1);
  assert.equal(none.stderr, `switchyard status: the admin API at ${gw.adminUrl} needs an admin key (401): SWITCHYARD_ADMIN_KEY is not set; set it to one of the gateway's admin.keys\n`);
  for (const r of [wrong, wrongOne]) {
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^switchyard status: the admin API at \S+ refused SWITCHYARD_ADMIN_KEY \(401\): the key is wrong or no longer configured; use one of the gateway's admin\.keys/);
    assert.equal(r.stderr.split('\n').length, 2, 'one line');
    assert.ok(!r.stderr.includes(WRONG) && !r.stdout.includes(WRONG), 'the key is never printed');
    assert.equal(r.stdout, '');
  }
  // A key that could not be sent as a header is refused before anything is sent, unquoted.
  const broken = await run(['status'], { url: gw.adminUrl, key: `${WRONG}\nx` });
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /^switchyard status: SWITCHYARD_ADMIN_KEY contains spaces, line breaks or non-ASCII characters/);
  assert.ok(!broken.stderr.includes(WRONG));
});

test('an unknown endpoint, an unreachable URL, an invocation listener: exit 1 with a one-line message', async () => {
  const [unknown, unreachable, invocation, invocationOne] = await Promise.all([
    run(['status', 'nope', '--interval', '0'], admin()),
    run(['status', '--interval', '0'], { url: dead, key: ADMIN }),
    run(['status', '--interval', '0'], { url: gw.url, key: ADMIN }),
    run(['status', 'cars', '--interval', '0'], { url: gw.url, key: ADMIN }),
  ]);
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stderr, `switchyard status: no endpoint named "nope" on the gateway at ${gw.adminUrl} (it has: cars, bikes, vans)\n`);
  assert.equal(unreachable.code, 1);
  assert.equal(unreachable.stderr, `switchyard status: cannot reach the admin API at ${dead} (ECONNREFUSED); is the gateway running, and is SWITCHYARD_ADMIN_URL its admin listener (server.admin_listen, default http://127.0.0.1:9090)?\n`);
  for (const r of [invocation, invocationOne]) {
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `switchyard status: ${gw.url} answers like an invocation listener, not the admin listener: set SWITCHYARD_ADMIN_URL to the gateway's server.admin_listen (default http://127.0.0.1:9090)\n`);
  }
  for (const r of [unknown, unreachable, invocation, invocationOne]) assert.equal(r.stdout, '');
});

test('status: usage errors exit 2 with the usage line; --help describes it', async () => {
  const usage = 'usage: switchyard status [ENDPOINT] [--output table|json] [--interval MS]\n';
  const cases: [string[], string][] = [
    [['status', '--output', 'yaml'], 'switchyard status: --output must be table or json\n'],
    [['status', '--interval', '-1'], 'switchyard status: --interval must be a whole number of milliseconds from 0 to 60000\n'],
    [['status', '--interval', 'soon'], 'switchyard status: --interval must be a whole number of milliseconds from 0 to 60000\n'],
    [['status', '--interval', '60001'], 'switchyard status: --interval must be a whole number of milliseconds from 0 to 60000\n'],
    [['status', 'cars', 'bikes'], 'switchyard status: too many arguments (at most 1)\n'],
    [['status', '--watch'], 'switchyard status: unknown option --watch\n'],
  ];
  const runs = await Promise.all(cases.map(([args]) => run(args, admin())));
  for (const [i, r] of runs.entries()) {
    const [args, message] = cases[i]!;
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, `${message}${usage}`, args.join(' '));
    assert.equal(r.stdout, '');
  }
  for (const url of ['not a url', 'ftp://127.0.0.1:9090', 'http://admin:secret@127.0.0.1:9090']) {
    const r = await run(['status'], { url, key: ADMIN });
    assert.equal(r.code, 2, url);
    assert.match(r.stderr, /^switchyard status: SWITCHYARD_ADMIN_URL (is not a URL|must be an http:\/\/ or https:\/\/ URL|must not contain user:password@)/);
    assert.ok(!r.stderr.includes('secret'));
  }
  const help = await run(['status', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, new RegExp(`^${esc(usage)}`));
  assert.match(help.stdout, /SWITCHYARD_ADMIN_URL \(default http:\/\/127\.0\.0\.1:9090\)/);
});
