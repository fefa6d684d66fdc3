import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { createHash } from 'node:crypto';

/**
 * Calls `onChange` when the config file's content changes. Watches the directory, not
 * the file: editors and Kubernetes ConfigMaps replace files by rename, which a file
 * watch loses. Bursts are coalesced, and a write that leaves the content as it was
 * does not reload.
 */
export function watchConfig(file: string, onChange: () => void, debounceMs = 150): () => void {
  let timer: NodeJS.Timeout | undefined;
  let lastHash: string | undefined;
  const name = basename(file);
  const hash = async (): Promise<string | undefined> => {
    try {
      return createHash('sha256').update(await readFile(file)).digest('hex');
    } catch {
      return undefined;
    }
  };
  void hash().then((h) => { lastHash = h; });
  const fire = (): void => {
    timer = undefined;
    void hash().then((h) => {
      if (h === undefined || h === lastHash) return;
      lastHash = h;
      onChange();
    });
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed && changed !== name && !changed.startsWith('..')) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, debounceMs);
    });
  } catch {
    watcher = undefined;
  }
  return () => {
    if (timer) clearTimeout(timer);
    watcher?.close();
  };
}
