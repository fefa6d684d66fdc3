import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { digestString, keyDigest, type KeySlot } from '../../policies/auth/key-digest.ts';

/** A regenerated key, kept as a digest only. */
interface KeyOverride {
  /** `sha256:<hex>` of the new key. */
  readonly digest: string;
  /** Digest of the configured value it replaced: if the file's key changes later, the file wins. */
  readonly replaces: string;
  readonly at: string;
  readonly by: string;
}

type StateFile = { version: 1; keys: Record<string, Partial<Record<KeySlot, KeyOverride>>> };

/**
 * Keys regenerated through the admin API (SPEC §5), persisted as digests in a JSON state
 * file so a restart does not bring a revoked key back. An override applies while the
 * config file still holds the key it replaced; an operator who edits the file's key
 * takes control again.
 */
export class KeyStore {
  readonly #file: string;
  #state: StateFile = { version: 1, keys: {} };
  // Writes run one at a time, each from the state the previous one left: two concurrent
  // regenerations must both land, or a restart could revive a revoked key.
  #writes: Promise<void> = Promise.resolve();
  #seq = 0;

  constructor(file: string) {
    this.#file = file;
  }

  /** Where the state lives. */
  get file(): string {
    return this.#file;
  }

  /** Read the state file; a missing file is an empty state. */
  async load(): Promise<void> {
    try {
      const parsed = JSON.parse(await readFile(this.#file, 'utf8')) as StateFile;
      if (parsed && parsed.version === 1 && typeof parsed.keys === 'object') this.#state = parsed;
    } catch (err) {
      // No file (or a path that cannot hold one): nothing was ever regenerated. Anything else
      // (unreadable, corrupt) stops the start: serving without it could revive revoked keys.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
    }
  }

  /** The override digest for a slot, if it still applies to the configured value. */
  get(endpoint: string, slot: KeySlot, configured: string | undefined): Buffer | undefined {
    const o = this.#state.keys[endpoint]?.[slot];
    if (!o) return undefined;
    const current = configured ? digestString(keyDigest(configured)) : '';
    return o.replaces === current ? Buffer.from(o.digest.slice(7), 'hex') : undefined;
  }

  /** Record a new key digest and write the file atomically (temp file + rename). */
  set(endpoint: string, slot: KeySlot, digest: Buffer, configured: string | undefined, by: string): Promise<void> {
    const write = this.#writes.then(() => this.#write(endpoint, slot, digest, configured, by));
    this.#writes = write.catch(() => {});
    return write;
  }

  async #write(endpoint: string, slot: KeySlot, digest: Buffer, configured: string | undefined, by: string): Promise<void> {
    const next: StateFile = structuredClone(this.#state);
    next.keys[endpoint] = {
      ...next.keys[endpoint],
      [slot]: {
        digest: digestString(digest),
        replaces: configured ? digestString(keyDigest(configured)) : '',
        at: new Date().toISOString(),
        by,
      },
    };
    await mkdir(dirname(this.#file), { recursive: true });
    const tmp = `${this.#file}.${process.pid}.${++this.#seq}.tmp`;
    await writeFile(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, this.#file);
    this.#state = next;
  }
}
