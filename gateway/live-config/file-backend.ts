import { randomUUID } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayConfig } from '../../config/schema.ts';
import type { LiveBackend, WriteResult } from './backend.ts';
import { EMPTY_DOC, isLiveDoc, LiveStoreError, parseLiveDoc, type KeyOverride, type LiveDoc } from './live-doc.ts';

/** The state file's format: `{"format": 2, "live": <LiveDoc>}`. */
export const STATE_FORMAT = 2;

/** What a state file of this format holds. */
interface StateFileV2 {
  readonly format: typeof STATE_FORMAT;
  readonly live: LiveDoc;
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Whether `v` is one of KeyStore's key overrides (the old file's only content). */
function isKeyOverride(v: unknown): v is KeyOverride {
  const o = v as Partial<KeyOverride> | null;
  return !!o && typeof o === 'object' && typeof o.digest === 'string' && DIGEST.test(o.digest)
    && typeof o.replaces === 'string' && typeof o.at === 'string' && typeof o.by === 'string';
}

/**
 * The document a file written by the KeyStore (`{"version": 1, "keys": {...}}`) stands for,
 * or undefined when `v` is not such a file. Its overrides have the live document's shape
 * already. It becomes version 1, not 0: 0 is "nothing was ever written" (EMPTY_DOC), and
 * these keys were written; a consumer that compares versions must see a document with
 * content. The first write from here makes version 2 and the file format 2.
 */
function fromKeyStore(v: unknown): LiveDoc | undefined {
  const s = v as { version?: unknown; keys?: unknown } | null;
  if (!s || typeof s !== 'object' || s.version !== 1 || 'format' in s) return undefined;
  if (!s.keys || typeof s.keys !== 'object' || Array.isArray(s.keys)) return undefined;
  const keys: Record<string, Partial<Record<'primary' | 'secondary', KeyOverride>>> = {};
  for (const [endpoint, slots] of Object.entries(s.keys as Record<string, unknown>)) {
    if (!slots || typeof slots !== 'object' || Array.isArray(slots)) return undefined;
    const entry: Partial<Record<'primary' | 'secondary', KeyOverride>> = {};
    for (const [slot, o] of Object.entries(slots as Record<string, unknown>)) {
      // A key override decides which key is accepted: anything unexpected is corruption,
      // not something to skip (skipping a slot could revive the key it revoked).
      if ((slot !== 'primary' && slot !== 'secondary') || !isKeyOverride(o)) return undefined;
      entry[slot] = { digest: o.digest, replaces: o.replaces, at: o.at, by: o.by };
    }
    if (Object.keys(entry).length > 0) keys[endpoint] = entry;
  }
  return { version: 1, endpoints: {}, keys, audit: [] };
}

/** How a {@link FileBackend} waits for another process's lock. */
export interface FileBackendOptions {
  /** How long a write waits for the lock before it fails, nothing changed (default 2000 ms). */
  readonly lockWaitMs?: number;
  /** Age after which a lock is taken to be left behind by a holder that is gone (default 10 000 ms). */
  readonly lockStaleMs?: number;
}

/** What a lock file holds: who took it, so that a waiter can tell a dead holder. */
interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly token: string;
}

/**
 * The live document in a JSON state file, for a gateway without Redis. Every write replaces
 * the whole file atomically: a temp file beside it (same directory, so the rename cannot
 * cross filesystems), flushed to disk, then renamed over it. A reader, a crash or a full
 * disk sees the old document or the new one, never half.
 *
 * More than one process may write the file: `serve --replace` runs the old gateway and the
 * new one side by side, both answering the admin port. So compare-and-set is against the
 * file as it is on disk at the moment of the write, not against what this process last
 * read, and the read-compare-rename runs under a lock file (`<file>.lock`, created with
 * O_EXCL) that every writer of the file takes. Loads take no lock: the rename makes every
 * read see a whole document.
 *
 * {@link keepCopy} uses the same file to hold the last document a replica saw in Redis, so
 * that it can start with it when Redis does not answer.
 */
export class FileBackend implements LiveBackend {
  readonly file: string;
  readonly where: string;
  readonly #lockWaitMs: number;
  readonly #lockStaleMs: number;
  /**
   * Loads and writes of this instance run one at a time: a load never overtakes a write,
   * and two writes of one process do not contend for the lock file with each other.
   */
  #queue: Promise<unknown> = Promise.resolve();
  #seq = 0;

  constructor(file: string, opts: FileBackendOptions = {}) {
    this.file = file;
    this.where = `state file ${file}`;
    this.#lockWaitMs = opts.lockWaitMs ?? 2000;
    this.#lockStaleMs = opts.lockStaleMs ?? 10_000;
  }

  load(): Promise<LiveDoc> {
    return this.#serial(() => this.#read());
  }

  /** Rejects with a {@link LiveStoreError} (`outcome: 'not_stored'`: a failed rename leaves the old file). */
  write(expected: number, next: LiveDoc): Promise<WriteResult> {
    return this.#serial(async () => {
      // A caller bug, not a store failure: refuse before touching anything.
      if (!isLiveDoc(next) || next.version !== expected + 1) {
        throw new Error(`${this.where}: refused a write of version ${String(next?.version)} over ${expected} (must be a live document one version on)`);
      }
      try {
        // A conflict needs no lock: the answer is the file as it was a moment ago, which is
        // all a lock could promise too. So a loser neither waits nor needs a writable directory.
        const seen = await this.#read();
        if (seen.version !== expected) return { ok: false, current: seen };
        return await this.#locked(async (stillHeld) => {
          // Again under the lock: another process may have written since the read above.
          const current = await this.#read();
          if (current.version !== expected) return { ok: false, current };
          await this.#save({ format: STATE_FORMAT, live: next }, stillHeld);
          return { ok: true };
        });
      } catch (err) {
        throw notStored(err);
      }
    });
  }

  /**
   * Store `doc` as it is, whatever the file holds (no compare-and-set): the copy of the
   * document Redis holds, which a replica loads ({@link load}) when Redis does not answer at
   * its start, so a key revoked through the API stays revoked through an outage. Atomic like
   * a write, under the same lock. Never rejects and logs nothing: resolves to undefined once
   * stored, or to the error (naming the file and the reason, never the content) for the
   * caller to log.
   */
  keepCopy(doc: LiveDoc): Promise<Error | undefined> {
    return this.#serial(async () => {
      try {
        if (!isLiveDoc(doc)) throw new Error(`${this.where}: refused to keep a copy that is not a live document`);
        await this.#locked((stillHeld) => this.#save({ format: STATE_FORMAT, live: doc }, stillHeld));
        return undefined;
      } catch (err) {
        return err instanceof Error ? err : new Error(`${this.where}: cannot be written`);
      }
    });
  }

  /**
   * Nothing reports another process's writes: the other writer (`serve --replace`) is a
   * gateway on its way out, and a write from a stale version is answered with the file's
   * document, so an edit never overwrites one it did not see.
   */
  watch(_fn: (doc: LiveDoc) => void): void {}

  /** Resolves once the writes already asked for have ended. */
  async close(): Promise<void> {
    await this.#queue.catch(() => {});
  }

  #serial<T>(run: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(run);
    this.#queue = result.catch(() => {});
    return result;
  }

  /**
   * Read and check the file. Errors name the file and the problem only: the content is
   * never quoted (JSON.parse's own message quotes it), even though it holds no secret.
   */
  async #read(): Promise<LiveDoc> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      // No file (or a path through a file): nothing was ever written. Anything else
      // (unreadable) must stop the caller: serving without it could revive revoked keys.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return EMPTY_DOC;
      throw new Error(`${this.where}: cannot be read (${code ?? 'error'})`, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new Error(`${this.where}: not valid JSON (${text.length} bytes); fix or remove it`);
    }
    const p = parsed as Partial<StateFileV2> | null;
    if (p && typeof p === 'object' && 'format' in p) {
      if (p.format !== STATE_FORMAT) throw new Error(`${this.where}: unknown format (this gateway reads format ${STATE_FORMAT})`);
      const live = parseLiveDoc(p.live);
      if (!live) throw new Error(`${this.where}: "live" is not a live document; fix or remove it`);
      return live;
    }
    const old = fromKeyStore(parsed);
    if (!old) throw new Error(`${this.where}: neither a live document (format ${STATE_FORMAT}) nor a key state (version 1); fix or remove it`);
    return old;
  }

  /**
   * Run `run` holding `<file>.lock`, taken with O_EXCL (one process at a time, whoever
   * writes the file). `run` gets a check that the lock is still this holder's: a lock can be
   * broken as stale under a holder that was frozen for {@link FileBackendOptions.lockStaleMs}.
   */
  async #locked<T>(run: (stillHeld: () => Promise<boolean>) => Promise<T>): Promise<T> {
    const lock = `${this.file}.lock`;
    const me: LockHolder = { pid: process.pid, host: hostname(), token: randomUUID() };
    const deadline = Date.now() + this.#lockWaitMs;
    try {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      while (!await takeLock(lock, me)) {
        if (await this.#breakIfStale(lock)) continue;
        if (Date.now() >= deadline) throw new LiveStoreError(`${this.where}: cannot be written (another process holds ${basename(lock)}); nothing changed`, 'not_stored');
        // Writes hold it for milliseconds; a jitter keeps two waiters from retrying in step.
        await sleep(5 + Math.random() * 20);
      }
    } catch (err) {
      if (err instanceof LiveStoreError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new LiveStoreError(`${this.where}: cannot be written (${code ?? 'error'}); nothing changed`, 'not_stored', { cause: err });
    }
    const stillHeld = async (): Promise<boolean> => (await readHolder(lock))?.token === me.token;
    try {
      return await run(stillHeld);
    } finally {
      // Only our own: if it was broken as stale, the file there is another writer's lock.
      if (await stillHeld().catch(() => false)) await rm(lock, { force: true }).catch(() => {});
    }
  }

  /**
   * Remove the lock if its holder is surely gone; whether to try again at once. Stale: its
   * process is gone (same host, so the pid means the same process; a pid seen from another
   * host or PID namespace means nothing, hence the host), or it is older than
   * `lockStaleMs` whoever holds it. Age covers the rest: a holder that crashed between
   * creating the file and writing its name in it, a pid reused since, another host. A real
   * write holds the lock for milliseconds, so a lock that old is not one in use.
   */
  async #breakIfStale(lock: string): Promise<boolean> {
    let before: Stats;
    try {
      before = await stat(lock);
    } catch {
      return true; // released meanwhile
    }
    const holder = await readHolder(lock).catch(() => undefined);
    const gone = holder !== undefined && holder.host === hostname() && !processAlive(holder.pid);
    if (!gone && Date.now() - before.mtimeMs < this.#lockStaleMs) return false;
    // The same file still? Another waiter may have broken it and taken a fresh one since.
    try {
      const now = await stat(lock);
      if (now.ino !== before.ino || now.mtimeMs !== before.mtimeMs) return true;
      await rm(lock, { force: true });
    } catch {
      // Gone already: try again.
    }
    return true;
  }

  /** Write `state` atomically with mode 0600 (it holds key digests and who changed what). */
  async #save(state: StateFileV2, stillHeld: () => Promise<boolean>): Promise<void> {
    const dir = dirname(this.file);
    const tmp = join(dir, `.${basename(this.file)}.${process.pid}.${++this.#seq}.tmp`);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
        // On disk before the rename: otherwise a crash soon after can leave an empty file
        // under the new name on filesystems that reorder metadata and data.
        await fh.datasync();
      } finally {
        await fh.close();
      }
      if (!await stillHeld()) throw Object.assign(new Error('lock lost'), { code: 'lock lost' });
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      throw new LiveStoreError(`${this.where}: cannot be written (${code ?? 'error'}); nothing changed`, 'not_stored', { cause: err });
    }
  }
}

/** Create the lock file holding `me`; false when another holds it. Rejects on anything else. */
async function takeLock(lock: string, me: LockHolder): Promise<boolean> {
  let fh: FileHandle;
  try {
    fh = await open(lock, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await fh.writeFile(JSON.stringify(me));
  } catch (err) {
    // Half a lock (a full disk) would hold every writer off until it is stale.
    await fh.close().catch(() => {});
    await rm(lock, { force: true }).catch(() => {});
    throw err;
  }
  await fh.close();
  return true;
}

/** Who holds the lock, or undefined: none, or a lock whose holder has not written its name yet. */
async function readHolder(lock: string): Promise<LockHolder | undefined> {
  let v: Partial<LockHolder>;
  try {
    v = JSON.parse(await readFile(lock, 'utf8')) as Partial<LockHolder>;
  } catch {
    return undefined;
  }
  return v && typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.token === 'string'
    ? { pid: v.pid, host: v.host, token: v.token } : undefined;
}

/** Whether a process with this pid exists here (EPERM: it does, under another user). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A write's failure as the {@link LiveStoreError} callers read `outcome` from (the message names the file already). */
function notStored(err: unknown): LiveStoreError {
  if (err instanceof LiveStoreError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return new LiveStoreError(e.message, 'not_stored', { cause: e.cause });
}

/** Where API edits are kept without Redis: `state.file`, else beside the config file, else under the working directory. */
export function stateFilePath(config: Pick<GatewayConfig, 'state'>, configPath: string | undefined): string {
  return config.state?.file
    ?? (configPath ? join(dirname(configPath), `.${basename(configPath)}.state.json`) : join(process.cwd(), '.switchyard-state', 'state.json'));
}
