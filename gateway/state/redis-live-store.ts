import { Redis } from 'ioredis';
import type { LiveBackend, WriteResult } from '../live-config/backend.ts';
import { EMPTY_DOC, isLiveDoc, LiveStoreError, parseLiveDoc, type LiveDoc } from '../live-config/live-doc.ts';
import type { Logger } from '../logger.ts';
import { outcomeOf, reasonOf } from './redis-errors.ts';
import { CAS_WRITE } from './redis-scripts.ts';

/** The live document, as JSON. */
export const DOC_KEY = 'switchyard:config:doc';
/** Its version, an integer: what the periodic check reads (a few bytes, not the document). */
export const VERSION_KEY = 'switchyard:config:version';
/** Every stored write publishes its version here. */
export const CHANGED_CHANNEL = 'switchyard:config:changed';

export interface RedisLiveOptions {
  readonly log: Logger;
  /** Period of the version check that heals a missed message (default 500 ms). */
  readonly pollMs?: number;
  /** Deadline of every call and of a TCP connect (default 1000 ms). */
  readonly commandTimeoutMs?: number;
  /** Reconnect backoff: 50 ms doubling up to this (default 1000 ms). */
  readonly maxBackoffMs?: number;
}

type CasReply = [stored: 1] | [stored: 0, version: string, current: string | null];
type LiveRedis = Redis & {
  switchyardLiveWrite(docKey: string, versionKey: string, expected: number, doc: string, version: number, channel: string): Promise<CasReply>;
};

/** Probe timeouts in a row on an open connection before both sockets are recycled. */
const RECYCLE_AFTER = 3;

/** How to start again from an empty store, for an error that leaves the operator no other way. */
const RECOVERY = `redis-cli DEL ${DOC_KEY} ${VERSION_KEY}`;

/**
 * The live document in Redis, shared by every replica. Its own two connections, not the
 * SharedState client: that one's 50 ms deadline is sized for the request path (a rate-limit
 * take), while a config read or write is rare, may carry a 100 KB document and is better
 * slow than refused; and a connection in subscriber mode can send nothing else anyway.
 *
 * Like SharedState it never waits for Redis: no offline queue, a deadline on every call,
 * nothing resent after a reconnect; a call while Redis is down rejects at once. Errors
 * carry a reason and `where` only, never the client's error as `cause`: a failed AUTH's
 * error holds the password among its command's arguments, and a failed write's the document.
 *
 * Watching: every replica subscribes to {@link CHANGED_CHANNEL}; a message naming a version
 * other than the last one seen fetches the document. Pub/sub loses what is published while a
 * subscriber is disconnected, so a version check every `pollMs` (and one after each
 * subscribe) heals that. A write that timed out but landed all the same reaches the writer's
 * own watchers the same way. Documents are delivered when their version differs from the
 * last one seen, so a store that went back (Redis restarted without persistence, flushed)
 * is followed too, with a warning. A document older than one already seen here is most often
 * just a read that raced with newer writes, not a store that went back: it is delivered (and
 * warned about) only once a fresh read of the version confirms the store is behind. A
 * document already delivered (or returned by load) may now and then come again: watchers
 * compare versions.
 */
class RedisLiveBackend implements LiveBackend {
  readonly where: string;
  readonly #client: LiveRedis;
  readonly #log: Logger;
  readonly #pollMs: number;
  #sub: Redis | undefined;
  #subscribed = false;
  #subscribing = false;
  readonly #watchers: ((doc: LiveDoc) => void)[] = [];
  /** The version last loaded, written or delivered here (-1: none yet). */
  #lastSeen = -1;
  /**
   * The highest version this backend has seen stored (loaded, written, delivered, answered
   * to a refused write) since the store last went back: anything older is stale news.
   */
  #highest = -1;
  /** Writes in flight: a refresh waits for them, as they move `#lastSeen`. */
  readonly #writes = new Set<Promise<unknown>>();
  #refreshing = false;
  #again = false;
  #timer: NodeJS.Timeout | undefined;
  #timeouts = 0;
  /** The version whose corrupt document was reported (one error line each). */
  #badVersion = -1;
  /** Settles on the first connection or the first failed attempt: calls wait for it once. */
  readonly #settled: Promise<void>;
  #settle: () => void = () => {};
  #up = false;
  #announced = false;
  #lastReason: string | undefined;
  #closed = false;

  constructor(url: string, opts: RedisLiveOptions) {
    this.#log = opts.log;
    this.#pollMs = opts.pollMs ?? 500;
    const timeout = opts.commandTimeoutMs ?? 1000;
    const maxBackoff = opts.maxBackoffMs ?? 1000;
    this.#settled = new Promise((resolve) => {
      this.#settle = resolve;
    });
    this.#client = new Redis(url, {
      connectionName: 'switchyard-live',
      enableOfflineQueue: false,
      commandTimeout: timeout,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: timeout,
      retryStrategy: (times: number) => Math.min(maxBackoff, 50 * 2 ** Math.min(times - 1, 16)),
      keepAlive: 10_000,
      disconnectTimeout: 50,
    }) as LiveRedis;
    const o = this.#client.options;
    this.where = `Redis ${o.path ?? `${o.host}:${o.port}`}`;
    this.#client.defineCommand('switchyardLiveWrite', { numberOfKeys: 2, lua: CAS_WRITE });
    this.#client.on('error', (err: unknown) => {
      this.#lastReason = reasonOf(err);
    });
    this.#client.on('ready', () => this.#connected());
    this.#client.on('close', () => this.#lost());
    // ioredis closes a connect attempt past `connectTimeout` (which settles), but a connection
    // whose ready check goes unanswered stays 'connect' without closing: stop waiting then.
    setTimeout(() => this.#settle(), 2 * timeout).unref();
  }

  async load(): Promise<LiveDoc> {
    await this.#settled;
    let text: string | null;
    try {
      text = await this.#client.get(DOC_KEY);
    } catch (err) {
      throw this.#unavailable('cannot read the live document', err);
    }
    const doc = text === null ? EMPTY_DOC : this.#parse(text);
    if (!doc) throw new Error(this.#unreadable(text?.length ?? 0));
    this.#seen(doc.version);
    return doc;
  }

  /** Rejects with a {@link LiveStoreError}: its `outcome` says whether the write may have landed. */
  write(expected: number, next: LiveDoc): Promise<WriteResult> {
    const p = this.#cas(expected, next);
    const settled = p.then(() => {}, () => {});
    this.#writes.add(settled);
    void settled.then(() => this.#writes.delete(settled));
    return p;
  }

  watch(fn: (doc: LiveDoc) => void): void {
    if (this.#closed) return;
    this.#watchers.push(fn);
    if (!this.#sub) this.#startWatching();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#watchers.length = 0;
    clearTimeout(this.#timer);
    this.#settle();
    await Promise.all([quit(this.#client), this.#sub && quit(this.#sub)]);
  }

  async #cas(expected: number, next: LiveDoc): Promise<WriteResult> {
    // A caller bug, not a store failure: refuse before touching anything.
    if (!isLiveDoc(next) || next.version !== expected + 1) {
      throw new Error(`${this.where}: refused a write of version ${String(next?.version)} over ${expected} (must be a live document one version on)`);
    }
    await this.#settled;
    if (this.#closed) throw new LiveStoreError(`${this.where}: cannot write the live document (closed)`, 'not_stored');
    let reply: CasReply;
    try {
      reply = await this.#client.switchyardLiveWrite(DOC_KEY, VERSION_KEY, expected, JSON.stringify(next), next.version, CHANGED_CHANNEL);
    } catch (err) {
      // A timeout may hide a write that landed: the watch delivers it if so.
      throw new LiveStoreError(`${this.where}: cannot write the live document (${reasonOf(err)})`, outcomeOf(err));
    }
    if (reply[0] === 1) {
      this.#seen(next.version);
      return { ok: true };
    }
    // Refused. Anything but a readable document of the version the store names would be
    // refused again on every retry (every admin edit a 503, for good): say how to get out.
    const stored = Number(reply[1]);
    if (reply[2] === null) {
      if (stored === 0) return { ok: false, current: EMPTY_DOC };
      throw new LiveStoreError(`${this.where}: ${DOC_KEY} is missing while ${VERSION_KEY} is ${stored}; ${this.#recovery()}`, 'not_stored');
    }
    const current = this.#parse(reply[2]);
    if (!current) throw new LiveStoreError(this.#unreadable(reply[2].length), 'not_stored');
    if (current.version !== stored) {
      throw new LiveStoreError(`${this.where}: ${DOC_KEY} is version ${current.version} while ${VERSION_KEY} is ${stored}; ${this.#recovery()}`, 'not_stored');
    }
    // Not marked as delivered: the caller may only report the conflict, and its watchers
    // must still get this document. It is the store's version now, though.
    this.#highest = Math.max(this.#highest, current.version);
    return { ok: false, current };
  }

  /** Loaded or written: the version in the store as of now. */
  #seen(version: number): void {
    this.#lastSeen = version;
    this.#highest = Math.max(this.#highest, version);
  }

  /** The stored document, checked whole; undefined when it is not JSON or not a live document. */
  #parse(text: string): LiveDoc | undefined {
    try {
      return parseLiveDoc(JSON.parse(text));
    } catch {
      return undefined;
    }
  }

  /** Never quotes the document: the message may reach a log line or an API answer. */
  #unreadable(bytes: number): string {
    return `${this.where}: the stored live document (${DOC_KEY}, ${bytes} bytes) is unreadable (not JSON, or not a valid live document); ${this.#recovery()}`;
  }

  #recovery(): string {
    return `no edit can be stored until it is fixed or removed. To start again from the config file alone (this loses every edit stored there): ${RECOVERY}`;
  }

  #unavailable(what: string, err: unknown): Error {
    return new Error(`${this.where}: ${what} (${reasonOf(err)})`);
  }

  #startWatching(): void {
    const sub = this.#client.duplicate({ connectionName: 'switchyard-live-watch', autoResubscribe: false });
    this.#sub = sub;
    // The command connection reports outages; this one's errors would say the same again.
    sub.on('error', () => {});
    sub.on('ready', () => this.#subscribe());
    sub.on('close', () => {
      this.#subscribed = false;
    });
    sub.on('message', (channel: string, message: string) => {
      if (channel === CHANGED_CHANNEL && Number(message) !== this.#lastSeen) void this.#refresh();
    });
    this.#schedule();
  }

  /** Subscribe (again, after a reconnect), then check once: what was published meanwhile is lost. */
  #subscribe(): void {
    const sub = this.#sub;
    if (!sub || this.#subscribing || this.#closed) return;
    this.#subscribing = true;
    sub.subscribe(CHANGED_CHANNEL).then(() => {
      this.#subscribing = false;
      this.#subscribed = true;
      void this.#refresh();
    }, () => {
      // The poll tries again while the connection is up.
      this.#subscribing = false;
    });
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(this.#tick, this.#pollMs);
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    if (this.#sub?.status === 'ready' && !this.#subscribed) this.#subscribe();
    if (this.#client.status === 'ready') void this.#refresh();
    this.#schedule();
  };

  /** Check the stored version; one check at a time, and one more if asked meanwhile. Never rejects. */
  async #refresh(): Promise<void> {
    if (this.#refreshing) {
      this.#again = true;
      return;
    }
    this.#refreshing = true;
    try {
      do {
        this.#again = false;
        await this.#check();
      } while (this.#again && !this.#closed);
    } catch (err) {
      this.#checkFailed(err);
    } finally {
      this.#refreshing = false;
    }
  }

  async #check(): Promise<void> {
    const version = Number(await this.#client.get(VERSION_KEY) ?? 0);
    this.#timeouts = 0;
    await Promise.all(this.#writes);
    if (version === this.#lastSeen || version === this.#badVersion || this.#closed) return;
    const text = await this.#client.get(DOC_KEY);
    // No document under a version is as unreadable as a broken one (and an EMPTY_DOC here
    // would look like a store gone back to 0, forever).
    const doc = text === null ? (version === 0 ? EMPTY_DOC : undefined) : this.#parse(text);
    if (!doc) {
      // Reported once per version, and checked again only when the version moves on.
      this.#badVersion = version;
      this.#log.error({ redis: this.where, doc_version: version, bytes: text?.length ?? 0, recovery: RECOVERY },
        'the live document in Redis is not valid; it is ignored until a valid one is written');
      return;
    }
    this.#badVersion = -1;
    // Our own write may have landed between the two reads: it is not news here.
    await Promise.all(this.#writes);
    if (doc.version === this.#lastSeen || this.#closed) return;
    if (doc.version < this.#highest) {
      // Older than one seen here. Usually this read raced with newer writes (ours, or another
      // replica's whose message will bring it): stale, not news. Only the version as it is now
      // tells that from a store that really went back; the next poll or message moves on.
      const now = Number(await this.#client.get(VERSION_KEY) ?? 0);
      if (now >= this.#highest || this.#closed) return;
      this.#log.warn({ redis: this.where, from_version: this.#highest, to_version: now },
        'the live document in Redis went back to an older version (Redis lost its data?); following it');
      // Once: from here on, the store's present version is the one to go by.
      this.#highest = now;
      if (doc.version !== now) {
        this.#again = true;
        return;
      }
    }
    this.#seen(doc.version);
    for (const fn of [...this.#watchers]) {
      try {
        fn(doc);
      } catch (err) {
        this.#log.error({ redis: this.where, doc_version: doc.version, reason: reasonOf(err) }, 'a live document watcher failed');
      }
    }
  }

  /** Unreachable is reported once per outage by the connection's events; a timeout may mean a dead peer. */
  #checkFailed(err: unknown): void {
    if (reasonOf(err) !== 'timeout') return;
    // Open but silent (a peer gone without a RST): start afresh rather than wait for TCP.
    if (++this.#timeouts >= RECYCLE_AFTER && this.#client.status === 'ready') {
      this.#timeouts = 0;
      this.#client.disconnect(true);
      this.#sub?.disconnect(true);
    }
  }

  #connected(): void {
    this.#timeouts = 0;
    // Watching: what was stored while this connection was down is checked now, not at the
    // next poll (the subscriber may have come back first, and its check failed on this one).
    if (this.#sub) void this.#refresh();
    if (this.#announced) this.#log.info({ redis: this.where }, 'live config store recovered');
    else if (!this.#up) this.#log.info({ redis: this.where }, 'live config store connected');
    this.#up = true;
    this.#announced = false;
    this.#settle();
  }

  #lost(): void {
    this.#settle();
    if (this.#closed || this.#announced) return;
    this.#announced = true;
    this.#log.warn({ redis: this.where, reason: this.#lastReason ?? 'connection closed' },
      'live config store unavailable: admin edits are refused and changes from other replicas wait until it recovers');
  }
}

async function quit(c: Redis): Promise<void> {
  try {
    if (c.status === 'ready') await c.quit();
  } catch {
    // Redis went away meanwhile: the disconnect below ends it anyway.
  } finally {
    c.disconnect();
  }
}

/** The live document in Redis at `url` (`state.redis_url`). */
export function createRedisLiveBackend(url: string, opts: RedisLiveOptions): LiveBackend {
  return new RedisLiveBackend(url, opts);
}
