import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const dirs = new Map<string, string>();

/**
 * Check that `root` can hold the spool (made if missing, a writable directory), without
 * making the private directory yet: that waits for the first spooled body. Throws if not.
 */
export function checkSpoolRoot(root: string): void {
  mkdirSync(root, { recursive: true });
  if (!statSync(root).isDirectory()) throw Object.assign(new Error(`${root} is not a directory`), { code: 'ENOTDIR' });
  accessSync(root, constants.W_OK | constants.X_OK);
}

/**
 * This process's private spool directory under `root`: made once with `mkdtemp` (a random
 * name, mode 0700, owned by this process, so no other local user can place, swap or read
 * files in it), removed at exit. Throws when `root` is unusable, which makes a config
 * naming it fail to load (start refused, reload refused) instead of failing each upload.
 */
export function spoolDir(root: string): string {
  let dir = dirs.get(root);
  if (!dir) {
    mkdirSync(root, { recursive: true });
    const made = mkdtempSync(join(root, 'switchyard-spool-'));
    dir = made;
    dirs.set(root, made);
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  return dir;
}
