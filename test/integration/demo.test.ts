import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { call } from '../helpers/http.ts';

// `npm start` as a user runs it: `switchyard` (bare, or `demo`) in a child process, listeners
// on port 0, its temporary directory under a TMPDIR of the test's own so nothing is missed.
const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'switchyard-demo-test-'));
});
after(() => rm(root, { recursive: true, force: true }));

interface Demo {
  readonly proc: ChildProcess;
  /** Its TMPDIR: where it makes its config directory. */
  readonly tmp: string;
  readonly exited: Promise<number | null>;
  /** Everything printed so far. */
  output(): string;
}

async function startDemo(args: string[], env: Record<string, string> = {}): Promise<Demo> {
  const tmp = await mkdtemp(join(root, 'tmp-'));
  const proc = spawn(process.execPath, [BIN, ...args], {
    // Node's compile cache goes elsewhere: TMPDIR is where the demo's own files must not be left.
    env: { ...process.env, PORT: '0', ADMIN_PORT: '0', TMPDIR: tmp, NODE_COMPILE_CACHE: join(root, 'compile-cache'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  proc.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { proc, tmp, exited, output: () => out };
}

/** Resolves with the output once it matches `pattern`; rejects if the process exits first. */
function waitForOutput(demo: Demo, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!pattern.test(demo.output())) return;
      demo.proc.stdout?.off('data', check);
      resolve(demo.output());
    };
    demo.proc.stdout?.on('data', check);
    void demo.exited.then((code) => reject(new Error(`demo exited (${code}) before printing ${pattern}:\n${demo.output()}`)));
    check();
  });
}

const BANNER_END = /Ctrl-C stops/;

function field(banner: string, pattern: RegExp): string {
  const m = pattern.exec(banner);
  assert.ok(m?.[1], `banner has ${pattern}:\n${banner}`);
  return m[1];
}

/** A printed `curl` line, done with Node's HTTP client: -X, -H and -d as curl reads them. */
function curl(line: string): Promise<{ status: number; body: string; json<T>(): T }> {
  const url = field(line, /(http:\/\/\S+)/);
  const method = /-X (\S+)/.exec(line)?.[1];
  const headers = Object.fromEntries([...line.matchAll(/-H "([^":]+): ([^"]*)"/g)].map((m) => [m[1]!.toLowerCase(), m[2]!]));
  const body = /-d '([^']*)'/.exec(line)?.[1];
  return call(url, { method: method ?? (body !== undefined ? 'POST' : 'GET'), headers, body });
}

test('the demo serves, its banner\'s key-rotation curl works, metrics have standard names, and SIGTERM removes its directory', { timeout: 60_000 }, async () => {
  const demo = await startDemo(['demo'], { SWITCHYARD_DEMO_KEY: 'demo-test-key-0123456789' });
  try {
    const banner = await waitForOutput(demo, BANNER_END);
    const base = field(banner, /invocation URL\s+(http:\/\/\S+)\/endpoints\/demo\/score/);
    const admin = field(banner, /admin API\s+(http:\/\/\S+)/);
    const configFile = field(banner, /config file\s+(\S+)/);
    assert.ok(configFile.startsWith(demo.tmp), `the config lives under TMPDIR: ${configFile}`);
    assert.ok(existsSync(configFile));

    const score = (key: string) => call(`${base}/endpoints/demo/score`, { body: '{"data":[[1,2]]}', headers: { authorization: `Bearer ${key}` } });
    assert.equal((await score('demo-test-key-0123456789')).status, 200);

    // The key-rotation curl the banner prints, pasted as is.
    const rotate = banner.split('\n').find((l) => l.includes('/keys/regenerate'));
    assert.ok(rotate, `the banner prints a key regeneration curl:\n${banner}`);
    assert.match(rotate, /^\s+curl -s -X POST http:\/\/\S+\/admin\/endpoints\/demo\/keys\/regenerate /);
    const r = await curl(rotate);
    assert.equal(r.status, 200, r.body);
    const fresh = r.json<{ endpoint: string; key: string }>();
    assert.equal(fresh.endpoint, 'demo');
    assert.equal((await score(fresh.key)).status, 200, 'the new key works at once');
    assert.equal((await score('demo-test-key-0123456789')).status, 200, 'and the demo key still does');

    // The status line the banner prints: its URL and key work with the CLI (run with this Node).
    const statusLine = banner.split('\n').find((l) => l.includes('switchyard status demo'));
    assert.ok(statusLine, `the banner prints a status command:\n${banner}`);
    const env = Object.fromEntries([...statusLine.matchAll(/(SWITCHYARD_ADMIN_\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!]));
    assert.equal(env.SWITCHYARD_ADMIN_URL, admin);
    const status = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'status', 'demo', '--interval', '0'], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
        resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, out: stdout + stderr });
      });
    });
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, /^endpoint demo/m);

    // Node's process metrics under prom-client's standard names (SPEC §6), once prefixed twice.
    const metrics = await call(`${admin}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^process_cpu_seconds_total \d/m);
    assert.match(metrics.body, /^nodejs_eventloop_lag_seconds \d/m);
    assert.match(metrics.body, /^process_resident_memory_bytes \d/m);
    assert.doesNotMatch(metrics.body, /switchyard_process_/);
    assert.match(metrics.body, /^switchyard_requests_total\{/m);
  } finally {
    demo.proc.kill('SIGTERM');
  }
  assert.equal(await demo.exited, 0, demo.output());
  assert.deepEqual(await readdir(demo.tmp), [], 'the config directory (plaintext keys, state) is gone');
});

test('a bare `switchyard` runs the demo; SIGINT drains and removes its directory', { timeout: 60_000 }, async () => {
  const demo = await startDemo([]);
  try {
    const banner = await waitForOutput(demo, BANNER_END);
    assert.match(banner, /Switchyard demo is running/);
    assert.equal((await readdir(demo.tmp)).length, 1, 'one config directory while it runs');
  } finally {
    demo.proc.kill('SIGINT');
  }
  assert.equal(await demo.exited, 0, demo.output());
  assert.deepEqual(await readdir(demo.tmp), []);
});

test('a demo that cannot start removes its directory too', { timeout: 60_000 }, async () => {
  // Hold a port, and point the demo's public listener at it.
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const port = (holder.address() as { port: number }).port;
  try {
    const demo = await startDemo(['demo'], { PORT: String(port) });
    assert.equal(await demo.exited, 1, demo.output());
    assert.match(demo.output(), /cannot listen/);
    assert.deepEqual(await readdir(demo.tmp), []);
  } finally {
    await new Promise<void>((r) => holder.close(() => r()));
  }
});

// Trial of issue 7, finding 5: SWITCHYARD_DEMO_KEY was pasted into the YAML text unescaped.
test('a demo key with quotes, $ and YAML punctuation is written as one string and works', { timeout: 60_000 }, async () => {
  const key = 'a"b\'c$d${NOPE}: [x], {y} # z-0123456789';
  const demo = await startDemo(['demo'], { SWITCHYARD_DEMO_KEY: key });
  try {
    const banner = await waitForOutput(demo, BANNER_END);
    const base = field(banner, /invocation URL\s+(http:\/\/\S+)\/endpoints\/demo\/score/);
    const score = (k: string) => call(`${base}/endpoints/demo/score`, { body: '{}', headers: { authorization: `Bearer ${k}` } });
    assert.equal((await score(key)).status, 200);
    assert.equal((await score('a')).status, 401);
  } finally {
    demo.proc.kill('SIGTERM');
  }
  assert.equal(await demo.exited, 0, demo.output());
});

/** The pids of `pid`'s children (Linux /proc), or undefined where there is no /proc. */
async function childrenOf(pid: number): Promise<number[] | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
    return text.split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return undefined;
  }
}

/** Whether `pid` is still a running process (a zombie waiting for init counts as gone). */
async function running(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /.test(stat);
  } catch {
    return false;
  }
}

// Finding 4: `kill -TERM <npm pid>`: npm and `sh -c` exited, the demo kept running with parent
// pid 1, still listening, its directory with plaintext keys kept. `npm start` runs the script
// through `sh -c` (dash here: it does not exec the command), so that is the tree built here.
test('the demo stops, drains and removes its directory when the shell that started it dies', { timeout: 60_000 }, async (t) => {
  const tmp = await mkdtemp(join(root, 'tmp-'));
  const sh = spawn('sh', ['-c', `"${process.execPath}" "${BIN}" demo`], {
    env: { ...process.env, PORT: '0', ADMIN_PORT: '0', TMPDIR: tmp, NODE_COMPILE_CACHE: join(root, 'compile-cache') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  sh.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  sh.stderr.on('data', (c: Buffer) => (out += c.toString('utf8')));
  // Every holder of the pipe gone (the shell and the demo it started): the demo has exited.
  const closed = new Promise<void>((resolve) => sh.stdout.once('close', () => resolve()));
  let node: number | undefined;
  try {
    const deadline = Date.now() + 30_000;
    while (!BANNER_END.test(out)) {
      assert.ok(Date.now() < deadline, `no banner:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const kids = await childrenOf(sh.pid!);
    if (kids === undefined) {
      t.skip('no /proc to find the demo\'s pid');
      return;
    }
    node = kids[0];
    assert.ok(node, 'the shell has the demo as its child');
    assert.equal((await readdir(tmp)).length, 1, 'one config directory while it runs');
    sh.kill('SIGTERM');
    const bounded = await Promise.race([closed.then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000))]);
    assert.ok(bounded, `the demo still runs 20 s after its shell died:\n${out}`);
    for (let i = 0; i < 100 && (await running(node)); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(await running(node), false, 'the demo process has exited');
    assert.match(out, /the process that started it \(pid \d+\) is gone; stopping/);
    assert.deepEqual(await readdir(tmp), [], 'its directory (plaintext keys) is gone');
  } finally {
    if (node !== undefined && (await running(node))) process.kill(node, 'SIGKILL');
    sh.kill('SIGKILL');
  }
});
