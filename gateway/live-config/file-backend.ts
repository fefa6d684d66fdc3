import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { GatewayConfig } from '../../config/schema.ts';
import type { LiveBackend, WriteResult } from './backend.ts';
import { EMPTY_DOC, isLiveDoc, type KeyOverride, type LiveDoc } from './live-doc.ts';

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

/**
 * The live document in a JSON state file, for a gateway without Redis (one writer: this
 * process). Every write replaces the whole file atomically: a temp file beside it (same
 * directory, so the rename cannot cross filesystems), flushed to disk, then renamed over
 * it. A reader, a crash or a full disk sees the old document or the new one, never half.
 *
 * Compare-and-set is against the document this process last loaded or wrote: another
 * process writing the same file is not supported (nor detected).
 */
export class FileBackend implements LiveBackend {
  readonly file: string;
  readonly where: string;
  /** The stored document as this process knows it; undefined until first read. */
  #current: LiveDoc | undefined;
  /**
   * Loads and writes run one at a time: a write decides on the version it reads here, so
   * two writes from one version cannot both pass, and a load cannot overtake a write.
   */
  #queue: Promise<unknown> = Promise.resolve();
  #seq = 0;

  constructor(file: string) {
    this.file = file;
    this.where = `state file ${file}`;
  }

  load(): Promise<LiveDoc> {
    return this.#serial(() => this.#read());
  }

  write(expected: number, next: LiveDoc): Promise<WriteResult> {
    return this.#serial(async () => {
      // A caller bug, not a store failure: refuse before touching anything.
      if (!isLiveDoc(next) || next.version !== expected + 1) {
        throw new Error(`${this.where}: refused a write of version ${String(next?.version)} over ${expected} (must be a live document one version on)`);
      }
      const current = this.#current ?? await this.#read();
      if (current.version !== expected) return { ok: false, current };
      await this.#save({ format: STATE_FORMAT, live: next });
      // Only now: a failed save left both the file and memory on the previous document.
      this.#current = next;
      return { ok: true };
    });
  }

  /** One writer (this process): nothing else ever stores a document to report. */
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
      if (code === 'ENOENT' || code === 'ENOTDIR') return (this.#current = EMPTY_DOC);
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
      if (!isLiveDoc(p.live)) throw new Error(`${this.where}: "live" is not a live document; fix or remove it`);
      return (this.#current = p.live);
    }
    const old = fromKeyStore(parsed);
    if (!old) throw new Error(`${this.where}: neither a live document (format ${STATE_FORMAT}) nor a key state (version 1); fix or remove it`);
    return (this.#current = old);
  }

  /** Write `state` atomically with mode 0600 (it holds key digests and who changed what). */
  async #save(state: StateFileV2): Promise<void> {
    const dir = dirname(this.file);
    const tmp = join(dir, `.${basename(this.file)}.${process.pid}.${++this.#seq}.tmp`);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(`${JSON.stringify(state, null, 2)}\n`);
        // On disk before the rename: otherwise a crash soon after can leave an empty file
        // under the new name on filesystems that reorder metadata and data.
        await fh.datasync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(`${this.where}: cannot be written (${code ?? 'error'}); nothing changed`, { cause: err });
    }
  }
}

/** Where API edits are kept without Redis: `state.file`, else beside the config file, else under the working directory. */
export function stateFilePath(config: Pick<GatewayConfig, 'state'>, configPath: string | undefined): string {
  return config.state?.file
    ?? (configPath ? join(dirname(configPath), `.${basename(configPath)}.state.json`) : join(process.cwd(), '.switchyard-state', 'state.json'));
}
