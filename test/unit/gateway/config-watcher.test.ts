import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { watchConfig } from '../../../gateway/config-watcher.ts';
import { waitFor } from '../../helpers/http.ts';

// Real files and a real directory watch; the settle time is injected (short) so the only
// waits are the fs events themselves and a few settle periods, bounded.
const SETTLE = 200;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-watch-'));
});
after(() => rm(dir, { recursive: true, force: true }));

/** Watch a fresh file holding `initial`; every call records the content it would load. */
async function watched(initial: string): Promise<{ file: string; seen: string[]; stop: () => void }> {
  const file = join(dir, `${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, initial);
  const seen: string[] = [];
  const stop = watchConfig(file, () => seen.push(readFileSync(file, 'utf8')), SETTLE);
  await sleep(20); // the watcher's first hash of the file as it is
  return { file, seen, stop };
}

test('a non-atomic save (truncate, write a moment later) is read once, whole, never truncated', async () => {
  const w = await watched('endpoints: v1\n');
  try {
    await writeFile(w.file, ''); // what an editor's in-place save does first
    // Later than one settle period (the old watcher read the empty file then), sooner than two.
    await sleep(SETTLE * 1.25);
    await writeFile(w.file, 'endpoints: v2\n');
    await waitFor(() => w.seen.length > 0, 'a reload', 5000);
    await sleep(SETTLE * 3); // nothing else arrives
    assert.deepEqual(w.seen, ['endpoints: v2\n'], 'one reload, of the finished file');
  } finally {
    w.stop();
  }
});

test('a rewrite with the same content does not reload; a rename-save does, once', async () => {
  const w = await watched('endpoints: a\n');
  try {
    await writeFile(w.file, 'endpoints: a\n');
    await sleep(SETTLE * 3);
    assert.deepEqual(w.seen, [], 'same content, no reload');
    const tmp = `${w.file}.tmp`;
    await writeFile(tmp, 'endpoints: b\n');
    await rename(tmp, w.file);
    await waitFor(() => w.seen.length > 0, 'a reload', 5000);
    await sleep(SETTLE * 3);
    assert.deepEqual(w.seen, ['endpoints: b\n']);
  } finally {
    w.stop();
  }
});

test('a file that keeps changing is not read until it holds still', async () => {
  const w = await watched('endpoints: 0\n');
  try {
    // A writer appending every SETTLE/2 for a while: never two equal looks in a row.
    for (let i = 1; i <= 6; i++) {
      await writeFile(w.file, `endpoints: ${i}\n`);
      await sleep(SETTLE / 2);
    }
    await waitFor(() => w.seen.length > 0, 'a reload', 5000);
    await sleep(SETTLE * 3);
    assert.deepEqual(w.seen, ['endpoints: 6\n']);
  } finally {
    w.stop();
  }
});

test('stop() ends watching', async () => {
  const w = await watched('endpoints: x\n');
  w.stop();
  await writeFile(w.file, 'endpoints: y\n');
  await sleep(SETTLE * 3);
  assert.deepEqual(w.seen, []);
});
