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

/** Default deadline for one identity-provider document fetch (ms); `entra.fetch_timeout_ms`'s default. */
export const FETCH_TIMEOUT_MS = 2_000;

/**
 * undici's own header/body timeouts, a backstop only: the caller's signal is the deadline
 * (the config allows up to 60 s, so these must not cut it shorter).
 */
const UNDICI_BACKSTOP_TIMEOUT_MS = 60_000;

/** Identity-provider documents are a few KiB; anything far larger is not a key set. */
const MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * Default {@link FetchJson}: undici `request`, no redirects, the deadline is the caller's
 * `signal` (headers and body alike), non-2xx rejected, body capped at 1 MiB.
 */
export const defaultFetchJson: FetchJson = async (url, signal) => {
  const res = await request(url, {
    method: 'GET',
    signal,
    headers: { accept: 'application/json' },
    headersTimeout: UNDICI_BACKSTOP_TIMEOUT_MS,
    bodyTimeout: UNDICI_BACKSTOP_TIMEOUT_MS,
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
  /**
   * Minimum spacing between two fetch attempts of one URL (default 5000 ms); after a failed
   * attempt, the time until the next one may start (counted from the failure).
   */
  minRefetchIntervalMs?: number;
  /** Age after which a request triggers a background refresh. */
  refreshIntervalMs?: number;
  /** Deadline of one fetch when the read passes none (default {@link FETCH_TIMEOUT_MS}). */
  fetchTimeoutMs?: number;
  /** Where fetch failures are reported. */
  logger?: WarnLogger;
}

/**
 * Per-read options. The deadline belongs to the read, not to the (process-wide) cache, so
 * a config reload that changes `entra.fetch_timeout_ms` applies to the next fetch started.
 */
export interface FetchOptions {
  /** Deadline (ms) of a fetch this read starts, and the longest it waits for one in flight. */
  readonly fetchTimeoutMs?: number | undefined;
}

/**
 * No document could be had from the identity provider: the message is safe to return to
 * clients (it names no URL and holds no token) and says when the next attempt may start.
 */
export class IdpUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdpUnavailableError';
  }
}

/** How a {@link RefreshingDocument} fetches and when it may. */
export interface RefreshingDocumentOptions<T> {
  readonly url: string;
  /** Turn the fetched JSON into the value; throw to reject a document as garbage. */
  readonly parse: (doc: unknown) => T;
  readonly now?: Clock;
  readonly fetchJson?: FetchJson;
  /** Minimum spacing between two fetch attempts, and the wait after a failed one (default 5 s). */
  readonly minRefetchIntervalMs?: number;
  /** Age after which a read starts a background refresh. */
  readonly refreshIntervalMs: number;
  /** Default deadline of one fetch (default {@link FETCH_TIMEOUT_MS}); a read may pass its own. */
  readonly fetchTimeoutMs?: number;
  /** Called when a fetch fails; `ageMs` is the age of the value kept, undefined if none. */
  readonly onFailure?: (err: unknown, ageMs: number | undefined) => void;
  readonly stats?: FetchStats;
}

/** `p`, or a rejection with the signal's reason once it aborts, whichever comes first. */
function withDeadline<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (err: unknown) => { signal.removeEventListener('abort', onAbort); reject(err instanceof Error ? err : new Error(String(err))); },
    );
  });
}

/** Wait for `p` (which never rejects), at most `ms` when given. */
async function waitAtMost(p: Promise<void>, ms: number | undefined): Promise<void> {
  if (ms === undefined) return p;
  let timer: NodeJS.Timeout | undefined;
  const elapsed = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  try {
    await Promise.race([p, elapsed]);
  } finally {
    clearTimeout(timer);
  }
}

function validTimeout(ms: number | undefined): ms is number {
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0;
}

/**
 * A JSON document from an identity provider (an OIDC discovery document, a JWKS), kept
 * fresh the way Entra's signing-key rollover guidance asks: requests drive fetches (no
 * timers), concurrent readers share one fetch, attempts are spaced by
 * `minRefetchIntervalMs` so a storm cannot hammer the provider, a stale value is served
 * while a background refresh runs, and a failed fetch never drops the last good value.
 *
 * A failing provider (the last attempt failed: an error, garbage, or no answer within the
 * fetch deadline) is not waited for: until the retry time, reads that need a fetch get no
 * value at once; at the retry time one read starts one fetch (a probe) and waits for it,
 * bounded by the deadline, while other reads keep failing fast instead of piling up behind
 * a provider that may hang. {@link unavailableReason} says when the next attempt is due.
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
  /** Earliest clock reading at which the next fetch may start. */
  #retryAt = Number.NEGATIVE_INFINITY;
  /** The last attempt failed (until one succeeds). */
  #failing = false;
  /** `waited`: some read awaits it (a background refresh has none until a read joins it). */
  #inflight: { readonly promise: Promise<void>; readonly timeoutMs: number; waited: boolean } | undefined;

  constructor(opts: RefreshingDocumentOptions<T>) {
    this.#o = opts;
    this.#now = opts.now ?? systemClock;
    this.#fetchJson = opts.fetchJson ?? defaultFetchJson;
    this.#minRefetchIntervalMs = opts.minRefetchIntervalMs ?? 5_000;
    this.#fetchTimeoutMs = validTimeout(opts.fetchTimeoutMs) ? opts.fetchTimeoutMs : FETCH_TIMEOUT_MS;
    this.stats = opts.stats ?? { fetches: 0, failures: 0 };
  }

  /** The last good value, without fetching. */
  get value(): T | undefined {
    return this.#value;
  }

  /** True while the last fetch attempt failed (until one succeeds). */
  get failing(): boolean {
    return this.#failing;
  }

  /**
   * The value to use now. Cold start awaits the (shared) first fetch; a stale value is
   * returned at once while a refresh runs behind it. Undefined when no fetch ever succeeded
   * (then {@link unavailableReason} says why, for the client).
   */
  async current(opts: FetchOptions = {}): Promise<T | undefined> {
    if (this.#value === undefined) {
      await this.#fetchOrJoin(opts);
      return this.#value;
    }
    // #start never rejects, so the floating promise is safe.
    if (this.#now() - this.#fetchedAt >= this.#o.refreshIntervalMs && this.#inflight === undefined && this.#mayFetch()) {
      void this.#start(this.#timeout(opts), false);
    }
    return this.#value;
  }

  /** Fetch again now if one is running or allowed (the value lacks something); returns when done. */
  async refetch(opts: FetchOptions = {}): Promise<T | undefined> {
    await this.#fetchOrJoin(opts);
    return this.#value;
  }

  /** Resolves once no fetch is in flight (tests await background refreshes with it). */
  async idle(): Promise<void> {
    while (this.#inflight) await this.#inflight.promise;
  }

  /**
   * Why a read got no value, in a sentence safe to return to clients: the provider is
   * unavailable and the next attempt is due in so many seconds (or is running now).
   */
  unavailableReason(): string {
    const inS = Math.ceil((this.#retryAt - this.#now()) / 1000);
    return this.#inflight !== undefined || !(inS > 0)
      ? 'The identity provider is unavailable (retrying now).'
      : `The identity provider is unavailable (retrying in ${inS} s).`;
  }

  #mayFetch(): boolean {
    return this.#now() >= this.#retryAt;
  }

  #timeout(opts: FetchOptions): number {
    return validTimeout(opts.fetchTimeoutMs) ? opts.fetchTimeoutMs : this.#fetchTimeoutMs;
  }

  /**
   * A read that needs a fetch: join the one in flight (bounded by this read's deadline),
   * or start one if allowed, else return at once. While the provider is failing, a fetch in
   * flight is a retry probe that one read waits for, not all.
   */
  async #fetchOrJoin(opts: FetchOptions): Promise<void> {
    const timeoutMs = this.#timeout(opts);
    const inflight = this.#inflight;
    if (inflight !== undefined) {
      // While failing, one read waits for the probe (the one that started it, or the first
      // to need a background refresh: say an unknown kid while the set is stale); the others
      // fail fast.
      if (this.#failing && inflight.waited) return;
      inflight.waited = true;
      // A fetch started under a longer deadline (before a config reload) does not hold
      // this read longer than its own.
      await waitAtMost(inflight.promise, timeoutMs < inflight.timeoutMs ? timeoutMs : undefined);
      return;
    }
    if (this.#mayFetch()) await this.#start(timeoutMs, true);
  }

  /** One fetch, bounded by `timeoutMs`; never rejects (failures keep the last good value). */
  #start(timeoutMs: number, waited: boolean): Promise<void> {
    const o = this.#o;
    this.#retryAt = this.#now() + this.#minRefetchIntervalMs;
    this.stats.fetches += 1;
    // AbortSignal.timeout's timer is unref'd: it bounds a slow provider without keeping the
    // process alive. withDeadline enforces it even on a fetcher that ignores the signal.
    const signal = AbortSignal.timeout(timeoutMs);
    const run = async (): Promise<void> => {
      try {
        this.#value = o.parse(await withDeadline(this.#fetchJson(o.url, signal), signal));
        this.#fetchedAt = this.#now();
        this.#failing = false;
      } catch (err) {
        this.stats.failures += 1;
        this.#failing = true;
        // Counted from the failure, so a slow attempt still leaves a full interval before the next.
        this.#retryAt = Math.max(this.#retryAt, this.#now() + this.#minRefetchIntervalMs);
        o.onFailure?.(
          signal.aborted ? new Error(`no answer within ${timeoutMs} ms`) : err,
          this.#value === undefined ? undefined : this.#now() - this.#fetchedAt,
        );
      }
    };
    const promise = run().finally(() => {
      if (this.#inflight?.promise === promise) this.#inflight = undefined;
    });
    this.#inflight = { promise, timeoutMs, waited };
    return promise;
  }
}
