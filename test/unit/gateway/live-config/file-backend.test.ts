import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../../../../config/key-digest.ts';
import { FileBackend, STATE_FORMAT } from '../../../../gateway/live-config/file-backend.ts';
import { EMPTY_DOC, LiveStoreError, type LiveDoc } from '../../../../gateway/live-config/live-doc.ts';

// The state-file backend of the live document on real files: what a fresh backend (a
// restart) reads back, compare-and-set (within a process, between instances, between
// processes), the lock file, failed writes, corrupt files, the copy of the Redis document,
// and the KeyStore's format it takes over.

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-live-file-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A fresh directory per test: its listing is the test's alone. */
async function freshDir(): Promise<string> {
  const d = join(dir, `t${++n}`);
  await mkdir(d);
  return d;
}

/** A state file's text: {@link doc}(1) with `over` laid on it. */
function live(over: Record<string, unknown>): string {
  return JSON.stringify({ format: STATE_FORMAT, live: { ...doc(1), ...over } });
}

/** A document at `version` whose traffic tells documents apart. */
function doc(version: number, blue = 100): LiveDoc {
  return {
    version,
    endpoints: { cars: { config: { traffic: { blue, green: 100 - blue } }, base: 'b4se', at: '2026-01-01T00:00:00.000Z', by: 'admin_key:ops' } },
    keys: {},
    audit: [{ version, previous_version: version - 1, at: '2026-01-01T00:00:00.000Z', by: 'admin_key:ops', action: 'patch', endpoint: 'cars', old_etag: 'a', new_etag: 'b', change: { traffic: { blue } } }],
  };
}

test('a missing file is the empty document, and what is written is read back after a restart', async () => {
  const file = join(await freshDir(), 'sub', 'state.json');
  const b = new FileBackend(file);
  assert.equal(b.where, `state file ${file}`);
  assert.deepEqual(await b.load(), EMPTY_DOC);
  assert.deepEqual(await b.write(0, doc(1, 90)), { ok: true });
  assert.deepEqual(await b.write(1, doc(2, 80)), { ok: true });
  const again = new FileBackend(file);
  assert.deepEqual(await again.load(), doc(2, 80));
  const raw = JSON.parse(await readFile(file, 'utf8')) as { format: number; live: LiveDoc };
  assert.equal(raw.format, STATE_FORMAT);
  assert.deepEqual(raw.live, doc(2, 80));
  await again.close();
  await b.close();
});

test('a write from a stale version is refused with the stored document, and changes nothing', async () => {
  const file = join(await freshDir(), 'state.json');
  const b = new FileBackend(file);
  assert.deepEqual(await b.write(0, doc(1, 90)), { ok: true });
  const before = await readFile(file, 'utf8');
  assert.deepEqual(await b.write(0, doc(1, 10)), { ok: false, current: doc(1, 90) });
  assert.equal(await readFile(file, 'utf8'), before);
  // Two writes from one version at the same moment: exactly one lands.
  const results = await Promise.all([b.write(1, doc(2, 70)), b.write(1, doc(2, 60))]);
  assert.deepEqual(results.map((r) => r.ok), [true, false]);
  assert.deepEqual(results[1], { ok: false, current: doc(2, 70) });
  assert.deepEqual(await new FileBackend(file).load(), doc(2, 70));
});

test('a write without a load first compares against the file', async () => {
  const file = join(await freshDir(), 'state.json');
  await new FileBackend(file).write(0, doc(1, 90));
  const restarted = new FileBackend(file);
  assert.deepEqual(await restarted.write(0, doc(1, 10)), { ok: false, current: doc(1, 90) });
  assert.deepEqual(await restarted.write(1, doc(2, 10)), { ok: true });
});

test('a write that is not one version on is a caller bug: refused, nothing written', async () => {
  const file = join(await freshDir(), 'state.json');
  const b = new FileBackend(file);
  await assert.rejects(b.write(0, doc(2)), /refused a write of version 2 over 0/);
  await assert.rejects(b.write(0, { version: 1 } as unknown as LiveDoc), /refused a write/);
  assert.deepEqual(await readdir(join(file, '..')), []);
});

test('a write that fails leaves the old document in force in the file', async () => {
  // A name 7 short of NAME_MAX: the file and its lock (`.lock`) can exist, its temp file's
  // name (`.NAME.<pid>.<n>.tmp`) cannot (ENAMETOOLONG), so the write fails after the load
  // and the lock without touching the file. Unlike a read-only directory, this fails for root too.
  const d = await freshDir();
  const name = `${'s'.repeat(243)}.json`;
  const file = join(d, name);
  const text = `${JSON.stringify({ format: STATE_FORMAT, live: doc(1, 90) })}\n`;
  await writeFile(file, text, { mode: 0o600 });
  const b = new FileBackend(file);
  assert.deepEqual(await b.load(), doc(1, 90));
  const err = await b.write(1, doc(2, 10)).then(() => undefined, (e: unknown) => e as Error);
  assert.ok(err instanceof Error, 'the write rejects');
  assert.match(err.message, /cannot be written \(ENAMETOOLONG\); nothing changed/);
  assert.ok(err.message.includes(file), 'the message names the file');
  assert.equal((err as Error & { outcome?: unknown }).outcome, 'not_stored');
  assert.equal(await readFile(file, 'utf8'), text, 'the file is untouched');
  // The file still holds version 1: a write from 2 is a conflict answered with it.
  assert.deepEqual(await b.write(2, doc(3, 10)), { ok: false, current: doc(1, 90) });
  assert.deepEqual(await readdir(d), [name], 'no temp file and no lock left');
});

test('a state path through a file: loads as empty, writes fail, and the backend recovers once it is fixed', async () => {
  const d = await freshDir();
  const blocker = join(d, 'blocker');
  await writeFile(blocker, 'not a directory');
  const b = new FileBackend(join(blocker, 'state.json'));
  assert.deepEqual(await b.load(), EMPTY_DOC);
  await assert.rejects(b.write(0, doc(1)), (e: Error) => e.message.startsWith(`state file ${join(blocker, 'state.json')}: cannot be written`));
  await rm(blocker);
  // Still at version 0: the failed write moved nothing.
  assert.deepEqual(await b.write(0, doc(1)), { ok: true });
  assert.deepEqual(await new FileBackend(join(blocker, 'state.json')).load(), doc(1));
});

test('a read-only directory: the write fails and the file keeps the old document', async (t) => {
  if (process.getuid?.() === 0) return t.skip('root writes through permissions (the ENAMETOOLONG test covers it)');
  const d = await freshDir();
  const file = join(d, 'state.json');
  const b = new FileBackend(file);
  await b.write(0, doc(1, 90));
  await chmod(d, 0o500);
  t.after(() => chmod(d, 0o700));
  await assert.rejects(b.write(1, doc(2, 10)), /cannot be written \(EACCES\)/);
  assert.deepEqual(await new FileBackend(file).load(), doc(1, 90));
  assert.deepEqual(await b.write(2, doc(3, 10)), { ok: false, current: doc(1, 90) });
});

test('the file is written with mode 0600 and no temp file stays behind', async () => {
  const d = await freshDir();
  const file = join(d, 'state.json');
  const b = new FileBackend(file);
  for (let v = 1; v <= 5; v++) assert.deepEqual(await b.write(v - 1, doc(v, v * 10)), { ok: true });
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(d), ['state.json']);
});

test('an unreadable or corrupt file rejects the load, naming the file and never quoting it', async () => {
  const d = await freshDir();
  const cases: [string, string, RegExp][] = [
    ['not-json.json', '{"format": 2, "live": {"note": "QUOTE-ME-NOT"', /not valid JSON/],
    ['wrong-shape.json', '{"note": "QUOTE-ME-NOT"}', /neither a live document/],
    ['future.json', '{"format": 3, "live": "QUOTE-ME-NOT"}', /unknown format/],
    ['bad-live.json', '{"format": 2, "live": {"version": -1, "note": "QUOTE-ME-NOT"}}', /"live" is not a live document/],
    ['bad-digest.json', '{"version": 1, "keys": {"cars": {"primary": {"digest": "QUOTE-ME-NOT", "replaces": "", "at": "", "by": ""}}}}', /neither a live document/],
    ['bad-slot.json', '{"version": 1, "keys": {"cars": {"tertiary": {"digest": "QUOTE-ME-NOT"}}}}', /neither a live document/],
    // Right at the top, wrong inside: each of these would crash or mislead a replica adopting it.
    ['null-endpoint.json', live({ endpoints: { cars: null } }), /"live" is not a live document/],
    ['no-base.json', live({ endpoints: { cars: { config: null, at: '', by: 'QUOTE-ME-NOT' } } }), /"live" is not a live document/],
    ['config-array.json', live({ endpoints: { cars: { config: ['QUOTE-ME-NOT'], base: '', at: '', by: '' } } }), /"live" is not a live document/],
    ['live-bad-digest.json', live({ keys: { cars: { primary: { digest: 'sha256:QUOTE-ME-NOT', replaces: '', at: '', by: '' } } } }), /"live" is not a live document/],
    ['live-bad-replaces.json', live({ keys: { cars: { primary: { digest: `sha256:${'a'.repeat(64)}`, replaces: 'QUOTE-ME-NOT', at: '', by: '' } } } }), /"live" is not a live document/],
    ['live-bad-slot.json', live({ keys: { cars: { tertiary: { digest: `sha256:${'a'.repeat(64)}`, replaces: '', at: '', by: '' } } } }), /"live" is not a live document/],
    ['bad-audit.json', live({ audit: [{ ...doc(1).audit[0], action: 'QUOTE-ME-NOT' }] }), /"live" is not a live document/],
    ['extra-member.json', live({ note: 'QUOTE-ME-NOT' }), /"live" is not a live document/],
    ['float-version.json', live({ version: 1.5 }), /"live" is not a live document/],
  ];
  for (const [name, content, why] of cases) {
    const file = join(d, name);
    await writeFile(file, content);
    const err = await new FileBackend(file).load().then(() => undefined, (e: unknown) => e as Error);
    assert.ok(err instanceof Error, `${name} rejects`);
    assert.match(err.message, why, name);
    assert.ok(err.message.startsWith(`state file ${file}: `), `${name}: names the file`);
    assert.ok(!err.message.includes('QUOTE-ME-NOT'), `${name}: does not quote the content`);
  }
  // A directory where the file should be: unreadable, not missing.
  await mkdir(join(d, 'a-dir.json'));
  await assert.rejects(new FileBackend(join(d, 'a-dir.json')).load(), /cannot be read \(EISDIR\)/);
});

test('a file written by the KeyStore is read as version 1 with its keys, and rewritten in the new format', async () => {
  const file = join(await freshDir(), 'state.json');
  // Exactly what the KeyStore (before the live document) wrote for one regenerated key.
  const keys = {
    cars: { primary: { digest: `sha256:${sha256('regenerated').toString('hex')}`, replaces: `sha256:${sha256('file-key-zero').toString('hex')}`, at: '2026-01-01T00:00:00.000Z', by: 'admin_key:ops' } },
  };
  await writeFile(file, `${JSON.stringify({ version: 1, keys }, null, 2)}\n`, { mode: 0o600 });

  const b = new FileBackend(file);
  const loaded = await b.load();
  assert.deepEqual(loaded, { version: 1, endpoints: {}, keys, audit: [] });
  assert.deepEqual(await b.write(0, doc(1)), { ok: false, current: loaded }, 'not the empty document');
  const next = { ...doc(2), keys: loaded.keys };
  assert.deepEqual(await b.write(1, next), { ok: true });
  const raw = JSON.parse(await readFile(file, 'utf8')) as { format: number; live: LiveDoc };
  assert.equal(raw.format, STATE_FORMAT);
  assert.deepEqual(raw.live, next);
});

test('an empty KeyStore file is version 1 with no keys', async () => {
  const file = join(await freshDir(), 'state.json');
  await writeFile(file, '{"version": 1, "keys": {}}\n');
  assert.deepEqual(await new FileBackend(file).load(), { version: 1, endpoints: {}, keys: {}, audit: [] });
});

test('two backends on one file (two processes in one): compare-and-set is against the file, not memory', async () => {
  const file = join(await freshDir(), 'state.json');
  const a = new FileBackend(file);
  const b = new FileBackend(file);
  assert.deepEqual(await a.load(), EMPTY_DOC);
  assert.deepEqual(await b.load(), EMPTY_DOC);
  assert.deepEqual(await a.write(0, doc(1, 90)), { ok: true });
  // b's memory says 0: the file says 1, and b is told so.
  assert.deepEqual(await b.write(0, doc(1, 10)), { ok: false, current: doc(1, 90) });
  // Both from version 1 at the same moment: one lands, the other gets the winner's document.
  const results = await Promise.all([a.write(1, doc(2, 70)), b.write(1, doc(2, 30))]);
  assert.equal(results.filter((r) => r.ok).length, 1, 'exactly one wins');
  const winner = results[0]!.ok ? doc(2, 70) : doc(2, 30);
  assert.deepEqual(results.find((r) => !r.ok), { ok: false, current: winner });
  assert.deepEqual(await new FileBackend(file).load(), winner);
  assert.deepEqual(await readdir(join(file, '..')), ['state.json'], 'no lock left');
});

/**
 * `n` edits, each appending an audit entry tagged `tag`, retried on conflict from the
 * document it was answered with: what a gateway's edit does. The same code runs in a child.
 */
const EDITOR = `
export async function edit(b, tag, n) {
  let cur = await b.load();
  for (let i = 0; i < n; i++) {
    for (;;) {
      const entry = { version: cur.version + 1, previous_version: cur.version, at: '2026-01-01T00:00:00.000Z', by: tag,
        action: 'patch', endpoint: 'cars', old_etag: '', new_etag: '', change: { i } };
      const next = { ...cur, version: cur.version + 1, audit: [...cur.audit, entry] };
      const r = await b.write(cur.version, next);
      if (r.ok) { cur = next; break; }
      cur = r.current;
    }
  }
}
`;

test('two processes editing one file at once lose no edit', async () => {
  const d = await freshDir();
  const file = join(d, 'state.json');
  const editor = join(d, 'editor.mjs');
  await writeFile(editor, EDITOR);
  const { edit } = await import(editor) as { edit: (b: FileBackend, tag: string, n: number) => Promise<void> };
  const N = 15;
  const module = fileURLToPath(new URL('../../../../gateway/live-config/file-backend.ts', import.meta.url));
  // The child says when it is ready and starts on the parent's word: both edit at once.
  const child = spawn(process.execPath, ['--input-type=module', '-e', `
    const { FileBackend } = await import(${JSON.stringify(module)});
    const { edit } = await import(${JSON.stringify(editor)});
    const b = new FileBackend(${JSON.stringify(file)});
    process.stdout.write('ready\\n');
    process.stdin.once('data', async () => { await edit(b, 'child', ${N}); process.exit(0); });
  `], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  await once(child.stdout, 'data');
  child.stdin.write('go\n');
  await edit(new FileBackend(file), 'parent', N);
  assert.deepEqual((await exited)[0], 0, 'the child edited without an error');

  const final = await new FileBackend(file).load();
  assert.equal(final.version, 2 * N);
  for (const tag of ['parent', 'child']) {
    assert.deepEqual(final.audit.filter((e) => e.by === tag).map((e) => (e.change as { i: number }).i), [...Array(N).keys()], `every ${tag} edit is there`);
  }
  // Each entry was made on the document before it: no edit was written over one it did not see.
  final.audit.forEach((e, i) => assert.equal(e.version, i + 1));
  assert.deepEqual((await readdir(d)).sort(), ['editor.mjs', 'state.json']);
});

/** A pid no process has: one that just exited. */
async function deadPid(): Promise<number> {
  const c = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(c, 'exit');
  return c.pid!;
}

test('a lock held by a live process: the write waits, then fails with nothing changed; a conflict is still answered', async () => {
  const d = await freshDir();
  const file = join(d, 'state.json');
  await new FileBackend(file).write(0, doc(1, 90));
  const lock = `${file}.lock`;
  const held = JSON.stringify({ pid: process.pid, host: hostname(), token: 'someone-else' });
  await writeFile(lock, held);
  const b = new FileBackend(file, { lockWaitMs: 100 });
  const t0 = performance.now();
  const err = await b.write(1, doc(2, 10)).then(() => undefined, (e: unknown) => e);
  const ms = performance.now() - t0;
  assert.ok(err instanceof LiveStoreError, 'rejects with a LiveStoreError');
  assert.equal(err.message, `state file ${file}: cannot be written (another process holds state.json.lock); nothing changed`);
  assert.equal(err.outcome, 'not_stored');
  assert.ok(ms >= 100 && ms < 1000, `waited ${ms.toFixed(0)} ms`);
  assert.deepEqual(await b.load(), doc(1, 90));
  assert.equal(await readFile(lock, 'utf8'), held, 'someone else\'s lock is left alone');
  assert.deepEqual(await b.write(0, doc(1, 10)), { ok: false, current: doc(1, 90) });
  // Released: the next write goes through.
  await rm(lock);
  assert.deepEqual(await b.write(1, doc(2, 10)), { ok: true });
});

test('a stale lock is broken: its process is gone, or it is older than lockStaleMs, or half written and old', async () => {
  const d = await freshDir();
  const file = join(d, 'state.json');
  const lock = `${file}.lock`;
  const old = new Date(Date.now() - 60_000);
  const cases: [string, string, Date | undefined][] = [
    ['holder gone', JSON.stringify({ pid: await deadPid(), host: hostname(), token: 't' }), undefined],
    ['holder alive but the lock is old (its pid reused)', JSON.stringify({ pid: process.pid, host: hostname(), token: 't' }), old],
    ['another host, old', JSON.stringify({ pid: 1, host: `not-${hostname()}`, token: 't' }), old],
    ['empty (holder died before writing its name), old', '', old],
  ];
  let v = 0;
  for (const [what, content, mtime] of cases) {
    await writeFile(lock, content);
    if (mtime) await utimes(lock, mtime, mtime);
    // A wait far shorter than the lock's age: only breaking it lets the write through.
    const b = new FileBackend(file, { lockWaitMs: 200, lockStaleMs: 30_000 });
    assert.deepEqual(await b.write(v, doc(v + 1)), { ok: true }, what);
    v++;
    assert.deepEqual(await readdir(d), ['state.json'], `${what}: the lock is gone after the write`);
  }
  // Not stale: the pid of a process on another host means nothing here, and the lock is fresh.
  await writeFile(lock, JSON.stringify({ pid: await deadPid(), host: `not-${hostname()}`, token: 't' }));
  await assert.rejects(new FileBackend(file, { lockWaitMs: 100 }).write(v, doc(v + 1)), /another process holds/);
  await writeFile(lock, '');
  await assert.rejects(new FileBackend(file, { lockWaitMs: 100 }).write(v, doc(v + 1)), /another process holds/);
});

test('keepCopy stores any document over the file, atomically, and a restart loads it; it never rejects', async () => {
  const d = await freshDir();
  const file = join(d, 'state.json');
  const b = new FileBackend(file);
  assert.equal(await b.keepCopy(doc(5, 40)), undefined);
  // Unconditional: a lower version (Redis flushed) replaces a higher one.
  assert.equal(await b.keepCopy(doc(2, 20)), undefined);
  assert.deepEqual(await new FileBackend(file).load(), doc(2, 20));
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(d), ['state.json'], 'no temp file or lock left');
  // Over a file it cannot read (a corrupt one) too: the copy is all that matters.
  await writeFile(file, '{"format": 2, "live": {');
  assert.equal(await b.keepCopy(doc(3, 30)), undefined);
  assert.deepEqual(await b.load(), doc(3, 30));

  // Not a live document: refused, the file untouched.
  const bad = await b.keepCopy({ ...doc(4), endpoints: { cars: null } } as unknown as LiveDoc);
  assert.ok(bad instanceof Error);
  assert.match(bad.message, /refused to keep a copy that is not a live document/);
  assert.deepEqual(await b.load(), doc(3, 30));

  // Unwritable (a path through a file): resolves to the error, naming the file.
  const blocker = join(d, 'blocker');
  await writeFile(blocker, 'not a directory');
  const err = await new FileBackend(join(blocker, 'state.json')).keepCopy(doc(1));
  assert.ok(err instanceof Error);
  assert.ok(err.message.startsWith(`state file ${join(blocker, 'state.json')}: cannot be written (`), err.message);
});
