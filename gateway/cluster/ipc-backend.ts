import type { LiveBackend, WriteResult } from '../live-config/backend.ts';
import { isLiveDoc, type LiveDoc } from '../live-config/live-doc.ts';
import type { Logger } from '../logger.ts';
import type { PrimaryChannel } from './channel.ts';
import type { PrimaryMessage } from './messages.ts';

/**
 * The live document with N workers and no Redis. Workers must not each write the state
 * file (one writer keeps them in order and tells the others at once), so the primary is its
 * one owner: a worker's load and write go to the primary over IPC ({@link IpcLiveBackend}),
 * the primary runs them one at a time against its store ({@link LiveOwner}), and after each
 * successful write sends the new document to every other worker, which applies it exactly
 * as a replica applies a document another replica stored in Redis.
 */

/** The worker's side: a {@link LiveBackend} whose store is the primary's. */
export class IpcLiveBackend implements LiveBackend {
  readonly where: string;
  readonly #channel: PrimaryChannel;
  readonly #watchers: ((doc: LiveDoc) => void)[] = [];
  /**
   * The newest document this worker knows of (sent by the primary, loaded, written, or
   * returned with a refused write). Versions only grow here: the primary's store is one
   * file with one writer. A watcher that registers late gets it: a gateway loads the
   * document, then starts watching some awaits later, and a write another worker made in
   * between must not be lost.
   */
  #latest: LiveDoc | undefined;
  #writing = 0;
  #healScheduled = false;
  #closed = false;

  /** `where`: the primary's store as it names itself (`state file /path`), for errors and logs. */
  constructor(channel: PrimaryChannel, where: string) {
    this.#channel = channel;
    this.where = `${where} (through the cluster primary)`;
    channel.on('switchyard:live-doc', (m) => {
      if (this.#closed || !isLiveDoc(m.doc) || !this.#newer(m.doc)) return;
      for (const fn of this.#watchers) fn(m.doc);
    });
  }

  async load(): Promise<LiveDoc> {
    const doc = await this.#channel.call<unknown>({ op: 'live-load' });
    if (!isLiveDoc(doc)) throw new Error(`${this.where}: the primary answered something that is not a live document`);
    this.#newer(doc);
    return doc;
  }

  async write(expected: number, next: LiveDoc): Promise<WriteResult> {
    this.#writing++;
    try {
      const r = await this.#channel.call<WriteResult>({ op: 'live-write', expected, doc: next });
      if (r.ok) {
        this.#newer(next);
        return { ok: true };
      }
      if (!isLiveDoc(r.current)) throw new Error(`${this.where}: the primary answered a refused write without the current document`);
      this.#newer(r.current);
      return { ok: false, current: r.current };
    } finally {
      this.#writing--;
      this.#heal();
    }
  }

  watch(fn: (doc: LiveDoc) => void): void {
    this.#watchers.push(fn);
    const latest = this.#latest;
    if (latest) queueMicrotask(() => fn(latest));
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#watchers.length = 0;
  }

  /** Keep `doc` as the newest known if it is; whether it was. */
  #newer(doc: LiveDoc): boolean {
    if (this.#latest && this.#latest.version >= doc.version) return false;
    this.#latest = doc;
    return true;
  }

  /**
   * Once this worker's writes have settled, hand the watchers the newest document again. A
   * document the primary sent while this worker was editing waits in the consumer's queue
   * behind that edit; if the edit then stored a newer one, the waiting document is older
   * than the one in force when its turn comes, and a consumer that follows any version the
   * store names (as the live config does: a flushed Redis goes back) would go back to it.
   * This delivery, queued after it, puts the newest back. Consumers ignore a version they have.
   */
  #heal(): void {
    if (this.#healScheduled || this.#closed) return;
    this.#healScheduled = true;
    setImmediate(() => {
      this.#healScheduled = false;
      // Another attempt of the same edit started: heal after that one.
      if (this.#writing > 0 || this.#closed) return;
      const latest = this.#latest;
      if (latest) for (const fn of this.#watchers) fn(latest);
    });
  }
}

/** A worker, as the primary reaches it. */
export interface Peer {
  readonly id: number;
  send(m: PrimaryMessage): void;
}

/**
 * The primary's side: the one owner of the store. Loads and writes are answered in the
 * order they arrive (the store itself serializes them: a load never overtakes a write),
 * and a document that landed goes to every worker but the one that wrote it.
 */
export class LiveOwner {
  readonly #backend: LiveBackend;
  readonly #peers: () => Iterable<Peer>;
  readonly #log: Logger;

  constructor(backend: LiveBackend, peers: () => Iterable<Peer>, log: Logger) {
    this.#backend = backend;
    this.#peers = peers;
    this.#log = log;
  }

  get where(): string {
    return this.#backend.where;
  }

  load(): Promise<LiveDoc> {
    return this.#backend.load();
  }

  async write(from: number, expected: number, doc: unknown): Promise<WriteResult> {
    if (!isLiveDoc(doc)) throw new Error(`${this.#backend.where}: refused a write that is not a live document`);
    const r = await this.#backend.write(expected, doc);
    if (r.ok) {
      let told = 0;
      for (const p of this.#peers()) {
        if (p.id === from) continue;
        p.send({ type: 'switchyard:live-doc', doc });
        told++;
      }
      this.#log.debug({ version: doc.version, worker_id: from, told }, 'admin edit stored; sent to the other workers');
    }
    return r;
  }

  close(): Promise<void> {
    return this.#backend.close();
  }
}
