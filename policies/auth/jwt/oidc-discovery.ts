import type { Clock } from '../../../gateway/clock.ts';
import { systemClock } from '../../../gateway/clock.ts';
import { defaultFetchJson, FETCH_TIMEOUT_MS } from './jwks-cache.ts';
import type { FetchJson, WarnLogger } from './jwks-cache.ts';

/** The parts of an OpenID Provider configuration the gateway uses. */
export interface OidcMetadata {
  readonly issuer: string | undefined;
  readonly jwksUri: string;
}

/** Tunables and injections for {@link OidcDiscovery}. */
export interface OidcDiscoveryOptions {
  /** Injected clock (ms). */
  now?: Clock;
  /** Injected fetcher; defaults to undici. */
  fetchJson?: FetchJson;
  /** Minimum spacing between two fetch attempts of one URL (default 5000 ms). */
  minRefetchIntervalMs?: number;
  /** Age after which a request triggers a background refresh (default 24 h: the document barely changes). */
  refreshIntervalMs?: number;
  /** Network timeout (default 5000 ms). */
  fetchTimeoutMs?: number;
  /** Where fetch failures are reported. */
  logger?: WarnLogger;
}

/** `https://login.microsoftonline.com/` and `https://login.microsoftonline.com` are the same authority. */
export function normalizeAuthority(authority: string): string {
  return authority.replace(/\/+$/, '');
}

/** `{authority}/{tenant}/v2.0/.well-known/openid-configuration`. */
export function openIdConfigurationUrl(authority: string, tenant: string): string {
  return `${normalizeAuthority(authority)}/${encodeURIComponent(tenant)}/v2.0/.well-known/openid-configuration`;
}

interface Entry {
  value: OidcMetadata | undefined;
  fetchedAt: number;
  lastAttemptAt: number;
  inflight: Promise<void> | undefined;
}

function parseMetadata(doc: unknown, url: string): OidcMetadata {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('discovery document is not an object');
  const rec = doc as Record<string, unknown>;
  if (typeof rec.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
  const jwks = new URL(rec.jwks_uri);
  // Never downgrade: an https authority must not send us to a plain-http key set.
  const allowed = new URL(url).protocol === 'https:' ? ['https:'] : ['https:', 'http:'];
  if (!allowed.includes(jwks.protocol)) throw new Error('discovery document has an unacceptable jwks_uri scheme');
  return { issuer: typeof rec.issuer === 'string' ? rec.issuer : undefined, jwksUri: jwks.href };
}

/**
 * OIDC discovery with the same rules as the JWKS cache: cached per URL, single-flight,
 * stale-while-revalidate, rate-limited retries, and the last good document kept while the
 * provider is unreachable or answers garbage.
 */
export class OidcDiscovery {
  /** Fetch counters. */
  readonly stats = { fetches: 0, failures: 0 };

  readonly #now: Clock;
  readonly #fetchJson: FetchJson;
  readonly #minRefetchIntervalMs: number;
  readonly #refreshIntervalMs: number;
  readonly #fetchTimeoutMs: number;
  readonly #logger: WarnLogger | undefined;
  readonly #entries = new Map<string, Entry>();

  constructor(opts: OidcDiscoveryOptions = {}) {
    this.#now = opts.now ?? systemClock;
    this.#fetchJson = opts.fetchJson ?? defaultFetchJson;
    this.#minRefetchIntervalMs = opts.minRefetchIntervalMs ?? 5_000;
    this.#refreshIntervalMs = opts.refreshIntervalMs ?? 24 * 60 * 60 * 1000;
    this.#fetchTimeoutMs = opts.fetchTimeoutMs ?? FETCH_TIMEOUT_MS;
    this.#logger = opts.logger;
  }

  /** Resolves once no fetch is in flight (tests await background refreshes with it). */
  async idle(): Promise<void> {
    for (const entry of this.#entries.values()) while (entry.inflight) await entry.inflight;
  }

  /** The `jwks_uri` for a tenant of an authority. */
  async jwksUri(authority: string, tenant: string): Promise<string> {
    return (await this.resolve(openIdConfigurationUrl(authority, tenant))).jwksUri;
  }

  /**
   * The metadata at `url`.
   * @throws {Error} when no document was ever fetched successfully.
   */
  async resolve(url: string): Promise<OidcMetadata> {
    let entry = this.#entries.get(url);
    if (entry === undefined) {
      entry = { value: undefined, fetchedAt: Number.NEGATIVE_INFINITY, lastAttemptAt: Number.NEGATIVE_INFINITY, inflight: undefined };
      this.#entries.set(url, entry);
    }
    const mayFetch = this.#now() - entry.lastAttemptAt >= this.#minRefetchIntervalMs;
    if (entry.value === undefined) {
      if (entry.inflight || mayFetch) await this.#refresh(url, entry);
      if (entry.value === undefined) throw new Error('OpenID configuration unavailable');
      return entry.value;
    }
    if (this.#now() - entry.fetchedAt >= this.#refreshIntervalMs && mayFetch) void this.#refresh(url, entry);
    return entry.value;
  }

  /** Single-flight fetch; never rejects. */
  #refresh(url: string, entry: Entry): Promise<void> {
    if (entry.inflight) return entry.inflight;
    entry.lastAttemptAt = this.#now();
    this.stats.fetches += 1;
    const run = async (): Promise<void> => {
      try {
        entry.value = parseMetadata(await this.#fetchJson(url, AbortSignal.timeout(this.#fetchTimeoutMs)), url);
        entry.fetchedAt = this.#now();
      } catch (err) {
        this.stats.failures += 1;
        this.#logger?.warn(
          { url, err: err instanceof Error ? err.message : String(err), haveLastGood: entry.value !== undefined },
          'OpenID configuration fetch failed',
        );
      }
    };
    const p = run().finally(() => {
      if (entry.inflight === p) entry.inflight = undefined;
    });
    entry.inflight = p;
    return p;
  }
}

/** The process-wide discovery cache (real clock, real network) used when none is injected. */
export const sharedOidcDiscovery: OidcDiscovery = new OidcDiscovery();
