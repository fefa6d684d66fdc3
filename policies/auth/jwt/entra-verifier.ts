import { decodeJwt, decodeProtectedHeader, errors, jwtVerify } from 'jose';
import type { CryptoKey, JWTPayload } from 'jose';
import type { Clock } from '../../../gateway/clock.ts';
import { systemClock } from '../../../gateway/clock.ts';
import type { Principal } from '../../principal.ts';
import { ALG_KEY_TYPES, JwksCacheRegistry, JwksError, str } from './jwks-cache.ts';
import type { FetchJson, WarnLogger } from './jwks-cache.ts';
import { normalizeAuthority, OidcDiscovery } from './oidc-discovery.ts';
import { IdpUnavailableError } from './refreshing-document.ts';
import type { FetchOptions } from './refreshing-document.ts';
import { TokenCache } from './token-cache.ts';

/** Outcome of {@link EntraVerifier.verify}; `reason` is safe to log and to return (never holds the token). */
export type VerifyResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401 | 403; reason: string };

/** Options of {@link createEntraVerifier}. */
export interface EntraVerifierOptions {
  /** e.g. `https://login.microsoftonline.com` (a trailing slash is ignored). */
  authority: string;
  /** Allowed tenant ids (`tid`); the first one also locates the key set for foreign tenants. */
  tenants: readonly string[];
  /** Accepted `aud` values. */
  audiences: readonly string[];
  /** Tolerance for `exp`/`nbf` (seconds). */
  clockSkewS: number;
  /** Injected clock (ms). */
  now?: Clock;
  /** Injected fetcher for discovery (and for the JWKS when `jwks` is not given). */
  fetchJson?: FetchJson;
  /** Shared key-set caches (the gateway's, one per process); default: the verifier's own. */
  jwks?: JwksCacheRegistry;
  /** Discovery cache; defaults like `jwks`. */
  discovery?: OidcDiscovery;
  /**
   * Deadline (ms) of a discovery or JWKS fetch this verifier starts, and the longest a
   * verification waits for one (`entra.fetch_timeout_ms`; default: the caches' own, 2000).
   * It lives here, not in the process-wide caches, so a reload that changes it applies.
   */
  fetchTimeoutMs?: number;
  /** Bound of the verified-token cache (default 10,000). */
  tokenCacheMaxEntries?: number;
  /** Where provider failures are reported. */
  logger?: WarnLogger;
}

/** Counters tests and metrics read. */
export interface EntraVerifierStats {
  /** Signature verifications performed (cache hits do none). */
  signatureChecks: number;
  /** Tokens answered from the verified-token cache. */
  cacheHits: number;
}

/** A bearer-token verifier for one endpoint's Entra settings. */
export interface EntraVerifier {
  verify(token: string): Promise<VerifyResult>;
  /**
   * The verified-token cache alone, synchronously: a principal for a token verified
   * earlier and not expired, else undefined (then call {@link verify}). Lets the request
   * path skip a promise per request for the common case of a client reusing its token.
   */
  cached(token: string): Principal | undefined;
  readonly stats: Readonly<EntraVerifierStats>;
}

/** The accepted algorithms: those the key-set cache knows a key type for (RS/PS/ES only). */
export const ALLOWED_ALGORITHMS: readonly string[] = Object.keys(ALG_KEY_TYPES);

/** Real tokens are a few KiB; refuse to hash or parse megabytes of attacker input. */
const MAX_TOKEN_CHARS = 32 * 1024;

function fail(status: 401 | 403, reason: string): VerifyResult {
  return { ok: false, status, reason };
}

/** Caller identity per Entra: `oid` (user or service principal), else the app ids, else `sub`. */
function toPrincipal(claims: JWTPayload, tid: string): Principal | undefined {
  const id = str(claims.oid) ?? str(claims.appid) ?? str(claims.azp) ?? str(claims.sub);
  if (id === undefined) return undefined;
  const roles = new Set<string>();
  if (Array.isArray(claims.roles)) for (const r of claims.roles) if (typeof r === 'string' && r !== '') roles.add(r);
  if (typeof claims.scp === 'string') for (const s of claims.scp.split(/\s+/)) if (s !== '') roles.add(s);
  return { type: 'aad_token', id, tenant: tid, roles: [...roles] };
}

/** Map jose's errors to distinct, client-safe sentences. */
function reasonFor(err: unknown): string {
  if (err instanceof JwksError) return err.message;
  if (err instanceof errors.JWTExpired) return 'The token has expired.';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf') return 'The token is not yet valid.';
    if (err.claim === 'aud') return 'The token audience is not accepted.';
    if (err.claim === 'iss') return 'The token issuer is not accepted.';
    if (err.claim === 'exp') return 'The token has no valid expiry.';
    return 'The token claims are invalid.';
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'The token signature is invalid.';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'The token signing algorithm is not accepted.';
  if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) return 'The token is malformed.';
  return 'The token could not be verified.';
}

/**
 * Verifier for Microsoft Entra ID access tokens.
 *
 * Order matters: the verified-token cache first (no crypto), then the unverified header
 * (reject `none`/HS* before touching keys, so an HS256 token "signed" with the public RSA
 * key never reaches a verify call), then the unverified `tid` only to pick the key set,
 * then jose verifies signature, `exp`/`nbf` (with skew), `aud` and `iss`.
 */
export function createEntraVerifier(opts: EntraVerifierOptions): EntraVerifier {
  const authority = normalizeAuthority(opts.authority);
  if (!URL.canParse(authority)) throw new TypeError('authority must be an absolute URL');
  if (opts.tenants[0] === undefined) throw new TypeError('at least one tenant is required');
  const firstTenant: string = opts.tenants[0];
  if (opts.audiences.length === 0) throw new TypeError('at least one audience is required');
  if (!Number.isFinite(opts.clockSkewS) || opts.clockSkewS < 0) throw new TypeError('clockSkewS must be a non-negative number');
  if (opts.fetchTimeoutMs !== undefined && !(Number.isFinite(opts.fetchTimeoutMs) && opts.fetchTimeoutMs > 0)) {
    throw new TypeError('fetchTimeoutMs must be a positive number');
  }

  const now = opts.now ?? systemClock;
  const ioOpts = {
    now, logger: opts.logger, fetchTimeoutMs: opts.fetchTimeoutMs, ...(opts.fetchJson ? { fetchJson: opts.fetchJson } : {}),
  };
  const fetchOpts: FetchOptions = { fetchTimeoutMs: opts.fetchTimeoutMs };
  // The gateway passes its process-wide caches; without them the verifier has its own.
  const jwks = opts.jwks ?? new JwksCacheRegistry(ioOpts);
  const discovery = opts.discovery ?? new OidcDiscovery(ioOpts);
  // Per verifier, never shared: a token accepted for one endpoint's audiences/tenants says
  // nothing about another endpoint's.
  const tokenCache = new TokenCache({ now, maxEntries: opts.tokenCacheMaxEntries });
  // Tenant ids are GUIDs; compare case-insensitively but fetch with the configured spelling.
  const tenants = new Map(opts.tenants.map((t) => [t.toLowerCase(), t]));
  const audiences = [...opts.audiences];
  const stats: EntraVerifierStats = { signatureChecks: 0, cacheHits: 0 };

  async function verify(token: string): Promise<VerifyResult> {
    if (typeof token !== 'string' || token.length === 0 || token.length > MAX_TOKEN_CHARS) {
      return fail(401, 'The token is malformed.');
    }
    const cached = tokenCache.get(token);
    if (cached !== undefined) {
      stats.cacheHits += 1;
      return { ok: true, principal: cached };
    }
    if (token.split('.').length !== 3) return fail(401, 'The token is malformed.');

    let alg: unknown;
    let kid: unknown;
    let unverified: JWTPayload;
    try {
      ({ alg, kid } = decodeProtectedHeader(token));
      unverified = decodeJwt(token);
    } catch {
      return fail(401, 'The token is malformed.');
    }
    if (alg === 'none') return fail(401, 'Unsigned tokens are not accepted.');
    if (typeof alg !== 'string' || !ALLOWED_ALGORITHMS.includes(alg)) {
      return fail(401, 'The token signing algorithm is not accepted.');
    }
    if (typeof kid !== 'string' || kid === '') return fail(401, 'The token has no key id.');
    const tid = str(unverified.tid);
    if (tid === undefined) return fail(401, 'The token has no tenant (tid) claim.');

    // Entra signs every tenant with the same keys: a foreign tenant's token is checked against
    // the first allowed tenant's set so a genuine one gets 403 and a forgery 401.
    const allowedTenant = tenants.get(tid.toLowerCase());
    let key: CryptoKey;
    try {
      // A failing provider is not waited for: these throw at once until its retry time,
      // and wait at most fetchTimeoutMs otherwise.
      const jwksUri = await discovery.jwksUri(authority, allowedTenant ?? firstTenant, fetchOpts);
      key = await jwks.get(jwksUri).getKey(kid, alg, fetchOpts);
    } catch (err) {
      const safe = err instanceof JwksError || err instanceof IdpUnavailableError;
      return fail(401, safe ? err.message : 'The signing keys are unavailable.');
    }

    let claims: JWTPayload;
    try {
      stats.signatureChecks += 1;
      ({ payload: claims } = await jwtVerify(token, key, {
        algorithms: [...ALLOWED_ALGORITHMS],
        currentDate: new Date(now()),
        clockTolerance: opts.clockSkewS,
        audience: audiences,
        issuer: [`https://sts.windows.net/${tid}/`, `${authority}/${tid}/v2.0`],
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      return fail(401, reasonFor(err));
    }
    if (allowedTenant === undefined) return fail(403, 'The token tenant is not allowed.');
    const principal = toPrincipal(claims, tid);
    if (principal === undefined) return fail(401, 'The token identifies no caller.');
    if (typeof claims.exp === 'number') tokenCache.set(token, principal, claims.exp);
    return { ok: true, principal };
  }

  function cached(token: string): Principal | undefined {
    if (token.length === 0 || token.length > MAX_TOKEN_CHARS) return undefined;
    const hit = tokenCache.get(token);
    if (hit !== undefined) stats.cacheHits += 1;
    return hit;
  }

  return { verify, cached, stats };
}
