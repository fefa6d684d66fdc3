import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sha256 } from '../../../../config/key-digest.ts';
import { FileBackend, STATE_FORMAT } from '../../../../gateway/live-config/file-backend.ts';
import { EMPTY_DOC, type LiveDoc } from '../../../../gateway/live-config/live-doc.ts';

// The state-file backend of the live document on real files: what a fresh backend (a
// restart) reads back, compare-and-set, failed writes, corrupt files, and the KeyStore's
// format it takes over.

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

test('a write that fails leaves the old document in force, in memory and in the file', async () => {
  // A name one short of NAME_MAX: the file itself can exist, its temp file's name cannot
  // (ENAMETOOLONG), so the write fails after the load without touching the file. Unlike a
  // read-only directory, this fails for root too.
  const d = await freshDir();
  const file = join(d, `${'s'.repeat(250)}.json`);
  const text = `${JSON.stringify({ format: STATE_FORMAT, live: doc(1, 90) })}\n`;
  await writeFile(file, text, { mode: 0o600 });
  const b = new FileBackend(file);
  assert.deepEqual(await b.load(), doc(1, 90));
  const err = await b.write(1, doc(2, 10)).then(() => undefined, (e: unknown) => e as Error);
  assert.ok(err instanceof Error, 'the write rejects');
  assert.match(err.message, /cannot be written \(ENAMETOOLONG\); nothing changed/);
  assert.ok(err.message.includes(file), 'the message names the file');
  assert.equal(await readFile(file, 'utf8'), text, 'the file is untouched');
  // Memory still holds version 1: a write from 2 is a conflict answered with it.
  assert.deepEqual(await b.write(2, doc(3, 10)), { ok: false, current: doc(1, 90) });
  assert.deepEqual(await readdir(d), [`${'s'.repeat(250)}.json`], 'no temp file left');
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
