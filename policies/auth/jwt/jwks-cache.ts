import { importJWK } from 'jose';
import type { CryptoKey, JWK } from 'jose';
import { RefreshingDocument, type FetchOptions, type FetchStats, type IdpDocumentOptions } from './refreshing-document.ts';

// Fetching lives with the refresh mechanism; re-exported for existing importers.
export {
  defaultFetchJson, FETCH_TIMEOUT_MS, type FetchJson, type FetchOptions, type WarnLogger,
} from './refreshing-document.ts';


/** Why {@link JwksCache.getKey} could not produce a key. */
export type JwksErrorCode = 'unknown_key' | 'unavailable' | 'key_mismatch';

/** A key lookup failure; `message` is a short sentence safe to log and return to clients. */
export class JwksError extends Error {
  readonly code: JwksErrorCode;
  constructor(code: JwksErrorCode, message: string) {
    super(message);
    this.name = 'JwksError';
    this.code = code;
  }
}

/** Tunables and injections shared by every cache of a {@link JwksCacheRegistry} (refresh default 1 h). */
export type JwksCacheOptions = IdpDocumentOptions;

/** Counters tests and metrics read. */
export type JwksStats = FetchStats;

/** Entra publishes each signing key for weeks; a set older than a day means the provider is unreachable. */
const STALE_WARNING_MS = 24 * 60 * 60 * 1000;

/**
 * The algorithms this gateway accepts, with the key type (and curve) each one needs.
 * Asymmetric only: HS* would let anyone holding the (public) key set mint tokens, and
 * `none` is no signature at all.
 */
export const ALG_KEY_TYPES: Readonly<Record<string, { kty: 'RSA' | 'EC'; crv?: string }>> = {
  RS256: { kty: 'RSA' }, RS384: { kty: 'RSA' }, RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' }, PS384: { kty: 'RSA' }, PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' }, ES384: { kty: 'EC', crv: 'P-384' }, ES512: { kty: 'EC', crv: 'P-521' },
};

interface StoredKey {
  /** Public members only: a stray private `d` in a published set is never imported. */
  readonly jwk: JWK;
  /** Imported keys per algorithm; Entra keys carry no `alg`, so the token's alg decides. */
  readonly imported: Map<string, Promise<CryptoKey>>;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-empty string claim or member, else undefined. */
export function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/**
 * Keep only public signature keys of type RSA or EC. Symmetric (`oct`) keys in a JWKS would
 * let anyone who can read the set mint tokens; `use: enc` keys are not for signatures.
 */
function parseKeySet(doc: unknown): Map<string, StoredKey> {
  if (!isRecord(doc) || !Array.isArray(doc.keys)) throw new Error('JWKS document has no "keys" array');
  const out = new Map<string, StoredKey>();
  for (const raw of doc.keys) {
    if (!isRecord(raw)) continue;
    const kid = str(raw.kid);
    if (kid === undefined || out.has(kid)) continue;
    if (raw.use !== undefined && raw.use !== 'sig') continue;
    if (Array.isArray(raw.key_ops) && !raw.key_ops.includes('verify')) continue;
    const alg = str(raw.alg);
    let jwk: JWK;
    if (raw.kty === 'RSA') {
      const n = str(raw.n);
      const e = str(raw.e);
      if (n === undefined || e === undefined) continue;
      jwk = { kty: 'RSA', n, e };
    } else if (raw.kty === 'EC') {
      const crv = str(raw.crv);
      const x = str(raw.x);
      const y = str(raw.y);
      if (crv === undefined || x === undefined || y === undefined) continue;
      jwk = { kty: 'EC', crv, x, y };
    } else {
      continue;
    }
    if (alg !== undefined) jwk.alg = alg;
    out.set(kid, { jwk, imported: new Map() });
  }
  // An empty set is never legitimate for a signing authority: treat it as garbage.
  if (out.size === 0) throw new Error('JWKS document holds no usable signing key');
  return out;
}

/**
 * The signing keys published at one JWKS URI. Lazy (no timers): requests drive fetches.
 *
 * - Cold start: the first callers share one fetch.
 * - Entra signing-key rollover: an unknown `kid` triggers one shared refetch, at most once
 *   per `minRefetchIntervalMs`, so a storm of forged kids cannot hammer the provider.
 * - Stale-while-revalidate: past `refreshIntervalMs` a request starts a background refresh
 *   and is answered from the current set at once.
 * - A failed fetch never drops keys: the last good set stays in use (logged when very old).
 * - A failing provider is not waited for: until the retry time, a read that needs a fetch
 *   fails at once (see {@link RefreshingDocument}).
 */
export class JwksCache {
  /** The JWKS URI this cache serves. */
  readonly uri: string;
  readonly #doc: RefreshingDocument<Map<string, StoredKey>>;

  constructor(uri: string, opts: JwksCacheOptions = {}) {
    this.uri = uri;
    const logger = opts.logger;
    this.#doc = new RefreshingDocument({
      url: uri,
      parse: parseKeySet,
      ...opts,
      refreshIntervalMs: opts.refreshIntervalMs ?? 60 * 60 * 1000,
      onFailure: (err, ageMs) => logger?.warn(
        { jwksUri: uri, err: err instanceof Error ? err.message : String(err), keySetAgeMs: ageMs },
        ageMs === undefined ? 'JWKS fetch failed; no key set yet'
          : ageMs > STALE_WARNING_MS ? 'JWKS fetch failed; keeping last good key set older than 24 h'
            : 'JWKS fetch failed; keeping last good key set',
      ),
    });
  }

  /** Fetch counters. */
  get stats(): Readonly<JwksStats> {
    return this.#doc.stats;
  }

  /** Number of keys in the current set (0 before the first successful fetch). */
  get size(): number {
    return this.#doc.value?.size ?? 0;
  }

  /** Resolves once no fetch is in flight (tests await background refreshes with it). */
  idle(): Promise<void> {
    return this.#doc.idle();
  }

  /**
   * The verification key for `kid`, imported for `alg`. A fetch it starts has the deadline
   * `opts.fetchTimeoutMs` (else the cache's); while the provider is failing it does not wait.
   * @throws {JwksError} `unknown_key`, `unavailable` (no set ever fetched; the message says
   * when the next attempt is due) or `key_mismatch`.
   */
  async getKey(kid: string, alg: string, opts: FetchOptions = {}): Promise<CryptoKey> {
    const keys = await this.#doc.current(opts);
    if (keys === undefined) throw new JwksError('unavailable', this.#doc.unavailableReason());
    // Entra signing-key rollover: refresh on unknown kid (shared, rate-limited).
    const stored = keys.get(kid) ?? (await this.#doc.refetch(opts))?.get(kid);
    if (stored === undefined) throw new JwksError('unknown_key', 'The token was signed with an unknown key.');
    return this.#import(stored, alg);
  }

  async #import(stored: StoredKey, alg: string): Promise<CryptoKey> {
    const need = ALG_KEY_TYPES[alg];
    const { jwk } = stored;
    // Guard against algorithm confusion before any crypto: the key decides what it may verify.
    if (need === undefined || jwk.kty !== need.kty || (need.crv !== undefined && jwk.crv !== need.crv)
      || (jwk.alg !== undefined && jwk.alg !== alg)) {
      throw new JwksError('key_mismatch', 'The signing key does not match the token algorithm.');
    }
    let p = stored.imported.get(alg);
    if (p === undefined) {
      p = importJWK(jwk, alg) as Promise<CryptoKey>;
      stored.imported.set(alg, p);
    }
    try {
      return await p;
    } catch {
      stored.imported.delete(alg);
      throw new JwksError('key_mismatch', 'The signing key does not match the token algorithm.');
    }
  }
}

/**
 * One {@link JwksCache} per JWKS URI, shared by every endpoint and tenant that uses it
 * (Entra signs all tenants with the same keys, so they share one fetch and one set).
 */
export class JwksCacheRegistry {
  readonly #opts: JwksCacheOptions;
  readonly #caches = new Map<string, JwksCache>();

  constructor(opts: JwksCacheOptions = {}) {
    this.#opts = opts;
  }

  /** The cache for `jwksUri`, created on first use. */
  get(jwksUri: string): JwksCache {
    const key = new URL(jwksUri).href;
    let cache = this.#caches.get(key);
    if (cache === undefined) {
      cache = new JwksCache(key, this.#opts);
      this.#caches.set(key, cache);
    }
    return cache;
  }
}

