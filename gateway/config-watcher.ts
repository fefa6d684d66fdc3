import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createHash } from 'node:crypto';

/** How long the file must stay the same before it is read for a reload. */
export const DEFAULT_SETTLE_MS = 250;

/**
 * Calls `onChange` when the config file's content changes and has settled. Watches the
 * directory, not the file: editors and Kubernetes ConfigMaps replace files by rename, which
 * a file watch loses. A write that leaves the content as it was does not reload.
 *
 * Settling: an ordinary save is not atomic (truncate, then write, sometimes hundreds of ms
 * apart), and a half-written file can be valid YAML with fewer endpoints. So after the
 * last event `settleMs` passes, the content is hashed, `settleMs` passes again, and it is
 * hashed again: only when both hashes agree (and no event came in between) does
 * `onChange` run. Any event, or a content that moved, starts the wait over. With the
 * default 250 ms a file must hold still for half a second; a writer that pauses longer
 * than that mid-save can still be seen half-way, which is why a reload also refuses any
 * file that does not validate (an empty one included).
 */
export function watchConfig(file: string, onChange: () => void, settleMs = DEFAULT_SETTLE_MS): () => void {
  let timer: NodeJS.Timeout | undefined;
  let lastHash: string | undefined;
  /** Bumped by every event: a read that started before the latest event is stale. */
  let generation = 0;
  let closed = false;
  const name = basename(file);
  const hash = async (): Promise<string | undefined> => {
    try {
      return createHash('sha256').update(await readFile(file)).digest('hex');
    } catch {
      return undefined;
    }
  };
  void hash().then((h) => { lastHash ??= h; });

  const schedule = (step: () => void): void => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      step();
    }, settleMs);
  };
  /** Second look: the same content `settleMs` after the first one, or start over. */
  const confirm = (gen: number, first: string): void => {
    void hash().then((h) => {
      if (closed || gen !== generation) return;
      if (h !== first) {
        schedule(() => look(gen));
        return;
      }
      lastHash = h;
      onChange();
    });
  };
  /** First look: skip an unchanged or unreadable (mid-rename) file, else look again later. */
  const look = (gen: number): void => {
    void hash().then((h) => {
      if (closed || gen !== generation || h === undefined || h === lastHash) return;
      schedule(() => confirm(gen, h));
    });
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed && changed !== name && !changed.startsWith('..')) return;
      const gen = ++generation;
      schedule(() => look(gen));
    });
  } catch {
    watcher = undefined;
  }
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    watcher?.close();
  };
}
