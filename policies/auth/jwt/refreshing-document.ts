import { request } from 'undici';
import { systemClock, type Clock } from '../../../gateway/clock.ts';

/**
 * Fetches a JSON document. The signal aborts slow identity providers; implementations
 * must reject on non-2xx answers so an error page is never taken for a key set.
 */
export type FetchJson = (url: string, signal: AbortSignal) => Promise<unknown>;

/** The slice of a pino logger this module needs (pino loggers satisfy it). */
export interface WarnLogger {
  warn(fields: Record<string, unknown>, msg: string): void;
}

/** Default network timeout for identity-provider documents (ms). */
export const FETCH_TIMEOUT_MS = 5_000;

/** Identity-provider documents are a few KiB; anything far larger is not a key set. */
const MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * Default {@link FetchJson}: undici `request`, no redirects, ~5 s timeout, non-2xx rejected,
 * body capped at 1 MiB.
 */
export const defaultFetchJson: FetchJson = async (url, signal) => {
  const res = await request(url, {
    method: 'GET',
    signal,
    headers: { accept: 'application/json' },
    headersTimeout: FETCH_TIMEOUT_MS,
    bodyTimeout: FETCH_TIMEOUT_MS,
  });
  if (res.statusCode < 200 || res.statusCode > 299) {
    await res.body.dump();
    throw new Error(`GET ${url} answered HTTP ${res.statusCode}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
    size += buf.length;
    if (size > MAX_DOCUMENT_BYTES) {
      res.body.destroy();
      throw new Error(`GET ${url} answered more than ${MAX_DOCUMENT_BYTES} bytes`);
    }
    chunks.push(buf);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
};

/** Fetch counters, shareable between documents. */
export interface FetchStats {
  /** Fetch attempts started (successful or not). */
  fetches: number;
  /** Fetch attempts that failed or returned an unusable document. */
  failures: number;
}

/** What callers may tune or inject for an identity-provider document cache. */
export interface IdpDocumentOptions {
  /** Injected clock (ms). */
  now?: Clock;
  /** Injected fetcher; defaults to undici. */
  fetchJson?: FetchJson;
  /** Minimum spacing between two fetch attempts of one URL (default 5000 ms). */
  minRefetchIntervalMs?: number;
  /** Age after which a request triggers a background refresh. */
  refreshIntervalMs?: number;
  /** Network timeout (default 5000 ms). */
  fetchTimeoutMs?: number;
  /** Where fetch failures are reported. */
  logger?: WarnLogger;
}

/** How a {@link RefreshingDocument} fetches and when it may. */
export interface RefreshingDocumentOptions<T> {
  readonly url: string;
  /** Turn the fetched JSON into the value; throw to reject a document as garbage. */
  readonly parse: (doc: unknown) => T;
  readonly now?: Clock;
  readonly fetchJson?: FetchJson;
  /** Minimum spacing between two fetch attempts (default 5 s). */
  readonly minRefetchIntervalMs?: number;
  /** Age after which a read starts a background refresh. */
  readonly refreshIntervalMs: number;
  readonly fetchTimeoutMs?: number;
  /** Called when a fetch fails; `ageMs` is the age of the value kept, undefined if none. */
  readonly onFailure?: (err: unknown, ageMs: number | undefined) => void;
  readonly stats?: FetchStats;
}

/**
 * A JSON document from an identity provider (an OIDC discovery document, a JWKS), kept
 * fresh the way Entra's signing-key rollover guidance asks: requests drive fetches (no
 * timers), concurrent readers share one fetch, attempts are spaced by
 * `minRefetchIntervalMs` so a storm cannot hammer the provider, a stale value is served
 * while a background refresh runs, and a failed fetch never drops the last good value.
 */
export class RefreshingDocument<T> {
  readonly stats: FetchStats;
  readonly #o: RefreshingDocumentOptions<T>;
  readonly #now: Clock;
  readonly #fetchJson: FetchJson;
  readonly #minRefetchIntervalMs: number;
  readonly #fetchTimeoutMs: number;
  #value: T | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;

  constructor(opts: RefreshingDocumentOptions<T>) {
    this.#o = opts;
    this.#now = opts.now ?? systemClock;
    this.#fetchJson = opts.fetchJson ?? defaultFetchJson;
    this.#minRefetchIntervalMs = opts.minRefetchIntervalMs ?? 5_000;
    this.#fetchTimeoutMs = opts.fetchTimeoutMs ?? FETCH_TIMEOUT_MS;
    this.stats = opts.stats ?? { fetches: 0, failures: 0 };
  }

  /** The last good value, without fetching. */
  get value(): T | undefined {
    return this.#value;
  }

  /**
   * The value to use now. Cold start awaits the (shared) first fetch; a stale value is
   * returned at once while a refresh runs behind it. Undefined when no fetch ever succeeded.
   */
  async current(): Promise<T | undefined> {
    if (this.#value === undefined) {
      // A recent failed attempt is not retried, so a down provider is not hit per request.
      if (this.#inflight || this.#mayFetch()) await this.#refresh();
      return this.#value;
    }
    // #refresh never rejects, so the floating promise is safe.
    if (this.#now() - this.#fetchedAt >= this.#o.refreshIntervalMs && this.#mayFetch()) void this.#refresh();
    return this.#value;
  }

  /** Fetch again now if one is running or allowed (the value lacks something); returns when done. */
  async refetch(): Promise<T | undefined> {
    if (this.#inflight || this.#mayFetch()) await this.#refresh();
    return this.#value;
  }

  /** Resolves once no fetch is in flight (tests await background refreshes with it). */
  async idle(): Promise<void> {
    while (this.#inflight) await this.#inflight;
  }

  #mayFetch(): boolean {
    return this.#now() - this.#lastAttemptAt >= this.#minRefetchIntervalMs;
  }

  /** Single-flight fetch; never rejects (failures keep the last good value). */
  #refresh(): Promise<void> {
    if (this.#inflight) return this.#inflight;
    const o = this.#o;
    this.#lastAttemptAt = this.#now();
    this.stats.fetches += 1;
    const run = async (): Promise<void> => {
      try {
        // AbortSignal.timeout's timer is unref'd: it bounds a slow provider without keeping
        // the process alive.
        this.#value = o.parse(await this.#fetchJson(o.url, AbortSignal.timeout(this.#fetchTimeoutMs)));
        this.#fetchedAt = this.#now();
      } catch (err) {
        this.stats.failures += 1;
        o.onFailure?.(err, this.#value === undefined ? undefined : this.#now() - this.#fetchedAt);
      }
    };
    const p = run().finally(() => {
      if (this.#inflight === p) this.#inflight = undefined;
    });
    this.#inflight = p;
    return p;
  }
}
