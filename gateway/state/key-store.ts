import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { digestString, keyDigest, type KeySlot } from '../../config/key-digest.ts';

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
 * A regeneration whose slot's configured key changed (a reload) while the new key was being
 * stored: the file wins, so the new key is never made effective.
 */
export class KeySupersededError extends Error {
  readonly code = 'ESUPERSEDED';
  constructor(endpoint: string, slot: KeySlot) {
    super(`the config file's ${slot} key of endpoint ${endpoint} changed while the regenerated key was being stored; the file's key is in force`);
    this.name = 'KeySupersededError';
  }
}

/** The digest form an override's `replaces` is compared in ('' for no configured key). */
function configuredDigest(configured: string | undefined): string {
  return configured ? digestString(keyDigest(configured)) : '';
}

/**
 * Keys regenerated through the admin API (SPEC §5), persisted as digests in a JSON state
 * file so a restart does not bring a revoked key back. An override applies while the
 * config file holds the key it replaced. Once the file's key for that slot is seen to
 * change, the override is dropped for good: at once in memory, and then in the state
 * file, so neither reverting the file nor a restart brings the superseded key back.
 *
 * "Seen" means passed to `get()`, which compile calls for every slot of every endpoint of
 * each config it makes current (start, reload, refresh).
 */
export class KeyStore {
  readonly #file: string;
  #state: StateFile = { version: 1, keys: {} };
  // Writes run one at a time, and each writes the in-memory state as it is when it starts:
  // two concurrent regenerations must both land, and a drop made meanwhile must not be
  // undone by a write that began before it, or a restart could revive a revoked key.
  #writes: Promise<void> = Promise.resolve();
  #seq = 0;
  /** The state file is behind memory (a write failed): the error, until a write succeeds. */
  #unsaved: unknown;
  /** Per `endpoint/slot`: the configured digest last passed to get(), and how often it changed. */
  readonly #seen = new Map<string, { digest: string; changes: number }>();

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

  /**
   * The override digest for a slot, if it was made against the configured value. An
   * override made against another value is superseded by the file: it is removed from
   * memory before this returns and from the state file by the next write.
   */
  get(endpoint: string, slot: KeySlot, configured: string | undefined): Buffer | undefined {
    const current = configuredDigest(configured);
    const id = `${endpoint}/${slot}`;
    const seen = this.#seen.get(id);
    if (!seen) this.#seen.set(id, { digest: current, changes: 0 });
    else if (seen.digest !== current) this.#seen.set(id, { digest: current, changes: seen.changes + 1 });

    const o = this.#state.keys[endpoint]?.[slot];
    if (!o) return undefined;
    if (o.replaces === current) return Buffer.from(o.digest.slice(7), 'hex');
    this.#drop(endpoint, slot);
    return undefined;
  }

  /**
   * Record a new key digest made against the `configured` value and write the file atomically
   * (temp file + rename). The override applies (get() returns it) only once it is stored.
   * Rejects with the write's error, or with KeySupersededError when the slot's configured
   * key changed while the write was under way (the file wins; the new key never applies).
   */
  set(endpoint: string, slot: KeySlot, digest: Buffer, configured: string | undefined, by: string): Promise<void> {
    const id = `${endpoint}/${slot}`;
    const replaces = configuredDigest(configured);
    const changes = this.#seen.get(id)?.changes ?? 0;
    const override: KeyOverride = { digest: digestString(digest), replaces, at: new Date().toISOString(), by };
    const write = this.#writes.then(async () => {
      const next: StateFile = structuredClone(this.#state);
      next.keys[endpoint] = { ...next.keys[endpoint], [slot]: override };
      await this.#save(next);
      const seen = this.#seen.get(id);
      if (seen && (seen.changes !== changes || seen.digest !== replaces)) {
        // The file's key moved on while we were writing: take the override back out of the file.
        this.#persist();
        throw new KeySupersededError(endpoint, slot);
      }
      // Into the state as it is now, not `next`: a drop made during the write stays dropped.
      this.#state.keys[endpoint] = { ...this.#state.keys[endpoint], [slot]: override };
    });
    this.#writes = write.catch(() => {});
    return write;
  }

  /**
   * Forget the overrides of endpoints the config no longer has: an endpoint removed and
   * added back later starts from its file keys.
   */
  retainOnly(endpoints: Iterable<string>): void {
    const keep = new Set(endpoints);
    let changed = false;
    for (const name of Object.keys(this.#state.keys)) {
      if (keep.has(name)) continue;
      delete this.#state.keys[name];
      for (const slot of ['primary', 'secondary'] as const) this.#seen.delete(`${name}/${slot}`);
      changed = true;
    }
    if (changed) this.#persist();
  }

  /**
   * Resolves once every change made so far is in the state file; rejects if the last write
   * failed (after trying once more). For shutdown and for tests that restart on the file.
   */
  async flush(): Promise<void> {
    if (this.#unsaved !== undefined) this.#persist();
    await this.#writes;
    if (this.#unsaved !== undefined) throw this.#unsaved;
  }

  #drop(endpoint: string, slot: KeySlot): void {
    const entry = this.#state.keys[endpoint];
    if (!entry) return;
    const { [slot]: _dropped, ...rest } = entry;
    if (Object.keys(rest).length > 0) this.#state.keys[endpoint] = rest;
    else delete this.#state.keys[endpoint];
    this.#persist();
  }

  /** Queue a write of the in-memory state as it will be when the write starts. */
  #persist(): void {
    this.#writes = this.#writes
      .then(() => this.#save(structuredClone(this.#state)))
      .catch((err: unknown) => {
        this.#unsaved = err;
      });
  }

  /** Write `state` atomically. Every state written holds all of memory, so any success catches up. */
  async #save(state: StateFile): Promise<void> {
    await mkdir(dirname(this.#file), { recursive: true });
    const tmp = `${this.#file}.${process.pid}.${++this.#seq}.tmp`;
    await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
    await rename(tmp, this.#file);
    this.#unsaved = undefined;
  }
}
