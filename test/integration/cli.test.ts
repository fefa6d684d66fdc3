import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
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

const built = COMMANDS.filter((c) => !c.planned);
const planned = COMMANDS.filter((c) => c.planned);

test('--help, -h and help print the usage generated from the command table', async () => {
  const runs = await Promise.all([run('--help'), run('-h'), run('help')]);
  for (const r of runs) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, runs[0]?.stdout);
  }
  const text = runs[0]?.stdout ?? '';
  for (const c of COMMANDS) assert.match(text, new RegExp(`^  switchyard ${c.name}\\b`, 'm'), `${c.name} is listed`);
  assert.match(text, /a bare `switchyard` runs `switchyard demo`/);
  assert.match(text, /not in this version/);
  // The built commands come first; the SPEC commands not built yet are listed apart, after.
  const lastBuilt = Math.max(...built.map((c) => text.indexOf(`switchyard ${c.name}`)));
  const firstPlanned = Math.min(...planned.map((c) => text.indexOf(`switchyard ${c.name}`)));
  assert.ok(lastBuilt < text.indexOf('not in this version') && text.indexOf('not in this version') < firstPlanned);
});

test('--version, -v and version print the package.json version', async () => {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const r of await Promise.all([run('--version'), run('-v'), run('version')])) {
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${pkg.version}\n`);
  }
});

test('the SPEC §5 commands not built yet say so instead of "unknown command"', async () => {
  assert.deepEqual(planned.map((c) => c.name).sort(), ['keys', 'mirror', 'status', 'traffic']);
  const runs = await Promise.all([
    run('traffic', 'cars', 'blue=90', 'green=10'),
    run('mirror', 'cars', 'shadow=10'),
    run('status'),
    run('status', 'cars'),
    run('keys', 'regenerate', 'cars', 'primary'),
  ]);
  for (const r of runs) {
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^switchyard (traffic|mirror|status|keys): not in this version \(SPEC §5\)/);
    assert.doesNotMatch(r.stderr, /unknown command/);
    assert.equal(r.stdout, '');
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
    assert.match(r.stdout, /^usage: switchyard serve --config FILE\n/);
  }
  const ms = await run('model-server', '-h');
  assert.equal(ms.code, 0);
  assert.match(ms.stdout, /^usage: switchyard model-server \[--name N\] \[--port P\]/);
  assert.equal((await run('help', 'nope')).code, 2);
});

test('missing arguments name the command\'s usage', async () => {
  const v = await run('validate');
  assert.equal(v.code, 2);
  assert.match(v.stderr, /usage: switchyard validate FILE\n/);
  const s = await run('serve');
  assert.equal(s.code, 2);
  assert.match(s.stderr, /--config FILE is required\nusage: switchyard serve --config FILE\n/);
});
