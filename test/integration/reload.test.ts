import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort, startUpstream, type TestUpstream } from '../helpers/gateway.ts';
import { call, type Reply, waitFor } from '../helpers/http.ts';

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));
const KEY = 'reload-test-key';

/** `switchyard serve` in a child process, on ports picked beforehand (port 0 would hide them). */
interface Served {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly exited: Promise<number | null>;
  output(): string;
}

let blue: TestUpstream;
let green: TestUpstream;
const held: { release: () => void }[] = [];
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-reload-'));
  blue = await startUpstream('blue');
  green = await startUpstream('green', (req, res) => {
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ deployment: 'green', url: req.url }));
    };
    // /hold answers only when the test says so (or after 10 s, so nothing hangs forever).
    if (req.url !== '/hold') return answer();
    const timer = setTimeout(answer, 10_000);
    held.push({ release: () => { clearTimeout(timer); answer(); } });
  });
});
after(async () => {
  await Promise.all([blue.close(), green.close()]);
  await rm(dir, { recursive: true, force: true });
});

function configYaml(ports: { pub: number; admin: number }, traffic: string): string {
  return `
server:
  listen: { host: 127.0.0.1, port: ${ports.pub} }
  admin_listen: { host: 127.0.0.1, port: ${ports.admin} }
  shutdown_grace_ms: 20000
endpoints:
  cars:
    keys: { primary: ${KEY} }
    traffic: ${traffic}
    deployments:
      blue: { instances: [${blue.url}] }
      green: { instances: [${green.url}] }
`;
}

async function serve(file: string, ports: { pub: number; admin: number }): Promise<Served> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', file, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => { out += c.toString(); });
  proc.stderr.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const s: Served = { proc, url: `http://127.0.0.1:${ports.pub}`, adminUrl: `http://127.0.0.1:${ports.admin}`, exited, output: () => out };
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`switchyard serve exited ${proc.exitCode}:\n${out}`);
    return (await fetch(`${s.adminUrl}/readyz`).then((r) => r.status, () => 0)) === 200;
  }, 'admin /readyz 200');
  return s;
}

async function stop(s: Served): Promise<void> {
  if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  await s.exited;
}

async function ports(): Promise<{ pub: number; admin: number }> {
  return { pub: await freePort(), admin: await freePort() };
}

function invoke(s: Served, path = '/endpoints/cars/score'): Promise<Reply> {
  return call(`${s.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{}' });
}

async function deploymentsOf(s: Served, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(String((await invoke(s)).headers['azureml-model-deployment']));
  return out;
}

/** Poll until a request lands on `name`; then the next few must all land there. */
async function assertSplitBecomes(s: Served, name: string): Promise<void> {
  await waitFor(async () => (await deploymentsOf(s, 1))[0] === name, `traffic to move to ${name}`);
  assert.deepEqual(await deploymentsOf(s, 5), Array(5).fill(name));
}

async function reloadFailures(s: Served): Promise<number> {
  const text = await (await fetch(`${s.adminUrl}/metrics`)).text();
  const m = /^switchyard_config_reloads_total\{result="failure"\} (\d+)$/m.exec(text);
  assert.ok(m, 'the reload counter is exported');
  return Number(m[1]);
}

describe('serve with a config file edited in place', () => {
  let s: Served;
  let file: string;
  let p: { pub: number; admin: number };
  before(async () => {
    p = await ports();
    file = join(dir, 'in-place.yaml');
    await writeFile(file, configYaml(p, '{ blue: 100, green: 0 }'));
    s = await serve(file, p);
  });
  after(() => stop(s));

  test('a change of the file applies the new split', async () => {
    assert.deepEqual(await deploymentsOf(s, 5), Array(5).fill('blue'));
    await writeFile(file, configYaml(p, '{ blue: 0, green: 100 }'));
    await assertSplitBecomes(s, 'green');
  });

  test('an invalid file is refused and counted; the running config keeps serving', async () => {
    const before = await reloadFailures(s);
    await writeFile(file, configYaml(p, '{ blue: 80, green: 10 }'));
    await waitFor(async () => (await reloadFailures(s)) === before + 1, 'the failed reload to be counted');
    assert.deepEqual(await deploymentsOf(s, 5), Array(5).fill('green'));
    assert.equal((await fetch(`${s.adminUrl}/readyz`)).status, 200);
  });

  test('SIGTERM drains: the in-flight request completes, readyz is 503, a second SIGTERM changes nothing, exit 0', async () => {
    const inFlight = invoke(s, '/endpoints/cars/hold');
    await waitFor(() => held.length === 1, 'the request to reach the instance');

    s.proc.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${s.adminUrl}/readyz`).then((r) => r.status, () => 0)) !== 200, 'readyz to stop answering 200');
    const ready = await fetch(`${s.adminUrl}/readyz`).then((r) => r.status, () => 'refused');
    assert.ok(ready === 503 || ready === 'refused', `readyz during the drain: ${ready}`);
    // New requests are refused at the listener (or answered 503).
    const late = await invoke(s).then((r) => r.status, (err: NodeJS.ErrnoException) => err.code);
    assert.ok(late === 'ECONNREFUSED' || late === 503, `a new request during the drain got ${late}`);

    s.proc.kill('SIGTERM');
    // Give the second signal time to be delivered before the held request is let go.
    await sleep(300);
    assert.equal(s.proc.exitCode, null, 'still draining');
    held.shift()!.release();

    const r = await inFlight;
    assert.equal(r.status, 200);
    assert.deepEqual(JSON.parse(r.body), { deployment: 'green', url: '/hold' });
    assert.equal(await s.exited, 0, s.output());
  });
});

describe('serve with a symlinked config (ConfigMap style)', () => {
  let s: Served;
  let link: string;
  let p: { pub: number; admin: number };
  let dataDir: string;
  before(async () => {
    p = await ports();
    const watched = await mkdtemp(join(dir, 'watched-'));
    dataDir = await mkdtemp(join(dir, 'data-'));
    await writeFile(join(dataDir, 'v1.yaml'), configYaml(p, '{ blue: 100, green: 0 }'));
    link = join(watched, 'gateway.yaml');
    await symlink(join(dataDir, 'v1.yaml'), link);
    s = await serve(link, p);
  });
  after(() => stop(s));

  test('swapping the link by rename applies the new file', async () => {
    await writeFile(join(dataDir, 'v2.yaml'), configYaml(p, '{ blue: 0, green: 100 }'));
    await symlink(join(dataDir, 'v2.yaml'), `${link}.tmp`);
    await rename(`${link}.tmp`, link);
    await assertSplitBecomes(s, 'green');
  });

  test('SIGHUP reloads an edit the watcher cannot see', async () => {
    // The link's target lives outside the watched directory: only SIGHUP can pick this up.
    await writeFile(join(dataDir, 'v2.yaml'), configYaml(p, '{ blue: 100, green: 0 }'));
    await sleep(400);
    assert.deepEqual(await deploymentsOf(s, 3), Array(3).fill('green'), 'not applied before SIGHUP');
    s.proc.kill('SIGHUP');
    await assertSplitBecomes(s, 'blue');
  });
});
