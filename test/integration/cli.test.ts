import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../gateway/cli/cli.ts';

// The `switchyard` command as a user runs it: a child process on this Node.
const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));

interface Run { readonly code: number | null; readonly stdout: string; readonly stderr: string }

function run(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** SPEC §5's commands over the admin API. */
const ADMIN_COMMANDS = ['status', 'traffic', 'mirror', 'get', 'apply', 'delete', 'keys', 'audit'];

test('--help, -h and help print the usage generated from the command table', async () => {
  const runs = await Promise.all([run('--help'), run('-h'), run('help')]);
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, runs[0]?.stdout);
  }
  const text = runs[0]?.stdout ?? '';
  for (const c of COMMANDS) assert.match(text, new RegExp(`^  switchyard ${c.name}\\b`, 'm'), `${c.name} is listed`);
  assert.match(text, /a bare `switchyard` runs `switchyard demo`/);
  assert.doesNotMatch(text, /not in this version/);
  // The commands over the admin API are listed together, under the variables they read.
  const heading = text.indexOf('over a running gateway\'s admin API (SWITCHYARD_ADMIN_URL, SWITCHYARD_ADMIN_KEY):\n');
  assert.ok(heading > 0);
  const at = ADMIN_COMMANDS.map((n) => text.indexOf(`  switchyard ${n} `));
  assert.ok(at.every((i) => i > heading) && at.every((i, k) => k === 0 || i > at[k - 1]!), 'in the table\'s order, after the heading');
  assert.ok(text.indexOf('  switchyard serve ') < heading && text.indexOf('  switchyard help ') > Math.max(...at));
});

test('--version, -v and version print the package.json version', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const r of await Promise.all([run('--version'), run('-v'), run('version')])) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
  }
});

test('every SPEC §5 command is built: its --help gives its usage, the variables it reads and the exit codes', async () => {
  const runs = await Promise.all(ADMIN_COMMANDS.map((n) => run(n, '--help')));
  for (const [i, r] of runs.entries()) {
    const name = ADMIN_COMMANDS[i]!;
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^usage: switchyard ${name} `), name);
    assert.match(r.stdout, /SWITCHYARD_ADMIN_URL \(default http:\/\/127\.0\.0\.1:9090\) with SWITCHYARD_ADMIN_KEY/, name);
    assert.match(r.stdout, /Exit 0; 1 /, name);
  }
});

test('an unknown command exits 2 and lists the table', async () => {
  const r = await run('frobnicate');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^switchyard: unknown command "frobnicate"\n/);
  for (const c of COMMANDS) assert.match(r.stderr, new RegExp(`^  switchyard ${c.name}\\b`, 'm'));
});

test('COMMAND --help and help COMMAND print that command\'s usage line', async () => {
  for (const r of await Promise.all([run('serve', '--help'), run('help', 'serve')])) {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^usage: switchyard serve --config FILE \[--workers N\] \[--replace\]\n/);
  }
  const ms = await run('model-server', '-h');
  assert.equal(ms.code, 0);
  assert.match(ms.stdout, /^usage: switchyard model-server \[--name N\] \[--port P\]/);
  assert.equal((await run('help', 'nope')).code, 2);
});

test('missing arguments name the command\'s usage', async () => {
  const v = await run('validate');
  assert.equal(v.code, 2);
  assert.match(v.stderr, /usage: switchyard validate FILE \[--diff\]\n/);
  const s = await run('serve');
  assert.equal(s.code, 2);
  assert.match(s.stderr, /--config FILE is required\nusage: switchyard serve --config FILE \[--workers N\] \[--replace\]\n/);
});

// Trial of issue 7, finding 3: unknown flags were ignored (`validate f --strict`, `serve --bogus`).
test('every command refuses an unknown option or a stray argument with its usage (exit 2)', async () => {
  const cases: [string[], RegExp][] = [
    [['validate', 'f.yaml', '--strict'], /^switchyard validate: unknown option --strict\nusage: switchyard validate FILE \[--diff\]\n$/],
    [['serve', '--bogus'], /^switchyard serve: unknown option --bogus\nusage: switchyard serve --config FILE \[--workers N\] \[--replace\]\n$/],
    [['serve', '--config', 'f.yaml', '--port=1'], /^switchyard serve: unknown option --port\n/],
    [['serve', 'f.yaml'], /^switchyard serve: takes no arguments \(got 1\)\n/],
    [['serve', '--config'], /^switchyard serve: --config needs a value\n/],
    [['demo', '--nope'], /^switchyard demo: unknown option --nope\nusage: switchyard demo /],
    [['demo', '--config', 'a.yaml', '--config', 'b.yaml'], /^switchyard demo: --config given twice\n/],
    [['model-server', '--verbose'], /^switchyard model-server: unknown option --verbose\nusage: switchyard model-server /],
    [['version', '--short'], /^switchyard version: unknown option --short\n/],
    [['help', 'serve', 'extra'], /^switchyard help: too many arguments \(at most 1\)\n/],
  ];
  const runs = await Promise.all(cases.map(([args]) => run(...args)));
  for (const [i, r] of runs.entries()) {
    const [args, pattern] = cases[i]!;
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('the admin API commands refuse bad arguments before asking the gateway anything (exit 2)', async () => {
  const cases: [string[], RegExp][] = [
    [['validate', 'a.yaml', 'b.yaml', '--diff'], /^switchyard validate: --diff takes one FILE\n/],
    [['traffic', 'cars', 'blue=100', '--force'], /^switchyard traffic: unknown option --force\nusage: switchyard traffic ENDPOINT DEPLOYMENT=WEIGHT\.\.\. /],
    [['get', 'cars', 'bikes'], /^switchyard get: too many arguments \(at most 1\)\n/],
    [['apply', 'cars.yaml'], /^switchyard apply: takes no arguments \(got 1\)\n/],
    [['keys', 'rotate', 'cars', 'primary'], /^switchyard keys: unknown subcommand "rotate" \(keys has: regenerate\)\n/],
  ];
  const runs = await Promise.all(cases.map(([args]) => run(...args)));
  for (const [i, r] of runs.entries()) {
    const [args, pattern] = cases[i]!;
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

// Finding 5: a bad or taken --port printed a Node stack trace.
test('model-server: a bad --port is a usage error, a taken one a one-line error', async () => {
  for (const port of ['abc', '99999', '-1', '1.5', '']) {
    const r = await run('model-server', `--port=${port}`);
    assert.equal(r.code, 2, `--port=${port}: ${r.stderr}`);
    assert.match(r.stderr, port === '' ? /--port needs a value/ : /^switchyard model-server: --port must be a number from 0 to 65535\nusage: /);
  }
  const latency = await run('model-server', '--latency-ms', 'slow');
  assert.equal(latency.code, 2);
  assert.match(latency.stderr, /--latency-ms must be a whole number of milliseconds/);

  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  try {
    const port = (holder.address() as AddressInfo).port;
    const r = await run('model-server', '--port', String(port));
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `switchyard model-server: cannot listen on 127.0.0.1:${port} (EADDRINUSE)\n`);
  } finally {
    await new Promise<void>((r) => holder.close(() => r()));
  }
});

test('serve refuses a port another process listens on, unless --replace (a rolling restart)', async () => {
  const holder = createServer(() => {});
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const taken = (holder.address() as AddressInfo).port;
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-inuse-'));
  const file = join(dir, 'gw.yaml');
  await writeFile(file, `server:\n  listen: { host: 127.0.0.1, port: ${taken} }\n  admin_listen: { host: 127.0.0.1, port: 0 }\nendpoints:\n  cars:\n    keys: { primary: cli-inuse-key-0123456789 }\n    traffic: { blue: 100 }\n    deployments: { blue: { instances: [http://127.0.0.1:9] } }\n`);
  try {
    const r = await run('serve', '--config', file);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${taken} \\(EADDRINUSE\\); another process listens there; for a rolling restart of a gateway start the new one with --replace`));
  } finally {
    holder.close();
    await rm(dir, { recursive: true, force: true });
  }
});
