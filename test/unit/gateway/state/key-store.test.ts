import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { sha256 } from '../../../../config/key-digest.ts';
import { KeyStore, KeySupersededError } from '../../../../gateway/state/key-store.ts';

// The key store on a real state file: what get() answers as the configured keys change,
// and what a fresh store (a restart) reads back.
const K0 = 'file-key-zero';
const K2 = 'file-key-two';
const S0 = 'file-secondary-zero';
const S1 = 'file-secondary-one';

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-keystore-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** A store on a fresh state file, with the configured keys already compiled once (seen). */
function store(file = join(dir, `state-${++n}.json`)): KeyStore {
  const ks = new KeyStore(file);
  ks.get('cars', 'primary', K0);
  ks.get('cars', 'secondary', S0);
  return ks;
}

async function restarted(ks: KeyStore): Promise<KeyStore> {
  await ks.flush();
  const again = new KeyStore(ks.file);
  await again.load();
  return again;
}

test('an override made against K0 is dropped for good once the file holds another key', async () => {
  const ks = store();
  const k1 = sha256('regenerated-k1');
  await ks.set('cars', 'primary', k1, K0, 'admin');
  assert.deepEqual(ks.get('cars', 'primary', K0), k1, 'applies while the file holds K0');
  assert.equal(ks.get('cars', 'primary', K2), undefined, 'the file changed: the file wins');
  assert.equal(ks.get('cars', 'primary', K0), undefined, 'reverting the file does not bring K1 back');
  const again = await restarted(ks);
  assert.equal(again.get('cars', 'primary', K0), undefined, 'nor does a restart');
  const state = JSON.parse(await readFile(ks.file, 'utf8')) as { keys: Record<string, unknown> };
  assert.deepEqual(state.keys, {}, 'the state file no longer holds it');
});

test('a literal and its sha256 form are the same configured key', async () => {
  const ks = store();
  const k1 = sha256('regenerated-k1');
  await ks.set('cars', 'primary', k1, K0, 'admin');
  assert.deepEqual(ks.get('cars', 'primary', `sha256:${sha256(K0).toString('hex')}`), k1);
});

test('a restart on a file whose key changed while the gateway was down drops the override', async () => {
  const ks = store();
  await ks.set('cars', 'primary', sha256('regenerated-k1'), K0, 'admin');
  const down = new KeyStore(ks.file);
  await down.load();
  assert.equal(down.get('cars', 'primary', K2), undefined);
  const again = await restarted(down);
  assert.equal(again.get('cars', 'primary', K0), undefined);
});

test('a drop made while another slot is being written is not undone by that write', async () => {
  const ks = store();
  await ks.set('cars', 'secondary', sha256('regenerated-s'), S0, 'admin');
  const k1 = sha256('regenerated-k1');
  const writing = ks.set('cars', 'primary', k1, K0, 'admin');
  // A reload compiles while the primary's write is under way: the secondary's file key changed.
  assert.equal(ks.get('cars', 'secondary', S1), undefined);
  await writing;
  assert.equal(ks.get('cars', 'secondary', S0), undefined, 'still dropped in memory');
  assert.deepEqual(ks.get('cars', 'primary', K0), k1);
  const again = await restarted(ks);
  assert.equal(again.get('cars', 'secondary', S0), undefined, 'and in the state file');
  assert.deepEqual(again.get('cars', 'primary', K0), k1);
});

test('a reload that changes the slot while its regeneration is being stored wins', async () => {
  const ks = store();
  const writing = ks.set('cars', 'primary', sha256('regenerated-k1'), K0, 'admin');
  ks.get('cars', 'primary', K2); // reload to K2 ...
  ks.get('cars', 'primary', K0); // ... and back, before the write finished
  await assert.rejects(writing, KeySupersededError);
  assert.equal(ks.get('cars', 'primary', K0), undefined, 'the superseded key never applies');
  const again = await restarted(ks);
  assert.equal(again.get('cars', 'primary', K0), undefined, 'nor after a restart');
});

test('concurrent regenerations of both slots both land', async () => {
  const ks = store();
  const p = sha256('p');
  const s = sha256('s');
  await Promise.all([ks.set('cars', 'primary', p, K0, 'a'), ks.set('cars', 'secondary', s, S0, 'b')]);
  const again = await restarted(ks);
  assert.deepEqual(again.get('cars', 'primary', K0), p);
  assert.deepEqual(again.get('cars', 'secondary', S0), s);
});

test('an endpoint removed from the config loses its overrides', async () => {
  const ks = store();
  await ks.set('cars', 'primary', sha256('k1'), K0, 'admin');
  ks.retainOnly(['boats']);
  assert.equal(ks.get('cars', 'primary', K0), undefined);
  const again = await restarted(ks);
  assert.equal(again.get('cars', 'primary', K0), undefined);
});

test('a drop that could not be written is retried by flush, and memory holds it meanwhile', async () => {
  const sub = join(dir, `sub-${++n}`);
  const ks = store(join(sub, 'state.json'));
  const k1 = sha256('k1');
  await ks.set('cars', 'primary', k1, K0, 'admin');
  // The state directory becomes a regular file: every write fails.
  await rm(sub, { recursive: true });
  await writeFile(sub, '');
  assert.equal(ks.get('cars', 'primary', K2), undefined);
  assert.equal(ks.get('cars', 'primary', K0), undefined, 'dropped in memory although not yet on disk');
  await assert.rejects(ks.flush());
  await rm(sub);
  await mkdir(sub);
  await writeFile(join(sub, 'state.json'), JSON.stringify({ version: 1, keys: { cars: { primary: { digest: `sha256:${k1.toString('hex')}`, replaces: `sha256:${sha256(K0).toString('hex')}`, at: '', by: '' } } } }));
  await ks.flush();
  const again = new KeyStore(ks.file);
  await again.load();
  assert.equal(again.get('cars', 'primary', K0), undefined, 'flush wrote the drop');
});
