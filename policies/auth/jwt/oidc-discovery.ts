import {
  IdpUnavailableError, RefreshingDocument, type FetchOptions, type FetchStats, type IdpDocumentOptions,
} from './refreshing-document.ts';

/** The parts of an OpenID Provider configuration the gateway uses. */
export interface OidcMetadata {
  readonly issuer: string | undefined;
  readonly jwksUri: string;
}

/** Tunables and injections for {@link OidcDiscovery} (refresh default 24 h: the document barely changes). */
export type OidcDiscoveryOptions = IdpDocumentOptions;

/** `https://login.microsoftonline.com/` and `https://login.microsoftonline.com` are the same authority. */
export function normalizeAuthority(authority: string): string {
  return authority.replace(/\/+$/, '');
}

/** `{authority}/{tenant}/v2.0/.well-known/openid-configuration`. */
export function openIdConfigurationUrl(authority: string, tenant: string): string {
  return `${normalizeAuthority(authority)}/${encodeURIComponent(tenant)}/v2.0/.well-known/openid-configuration`;
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
  /** Fetch counters, over every URL. */
  readonly stats: FetchStats = { fetches: 0, failures: 0 };
  readonly #opts: OidcDiscoveryOptions;
  readonly #docs = new Map<string, RefreshingDocument<OidcMetadata>>();

  constructor(opts: OidcDiscoveryOptions = {}) {
    this.#opts = opts;
  }

  /** Resolves once no fetch is in flight (tests await background refreshes with it). */
  async idle(): Promise<void> {
    for (const doc of this.#docs.values()) await doc.idle();
  }

  /** The `jwks_uri` for a tenant of an authority. */
  async jwksUri(authority: string, tenant: string, opts: FetchOptions = {}): Promise<string> {
    return (await this.resolve(openIdConfigurationUrl(authority, tenant), opts)).jwksUri;
  }

  /**
   * The metadata at `url`. A fetch it starts has the deadline `opts.fetchTimeoutMs` (else
   * the discovery's); while the provider is failing it does not wait.
   * @throws {IdpUnavailableError} when no document was ever fetched successfully (the
   * message, safe for clients, says when the next attempt is due).
   */
  async resolve(url: string, opts: FetchOptions = {}): Promise<OidcMetadata> {
    const doc = this.#doc(url);
    const value = await doc.current(opts);
    if (value === undefined) throw new IdpUnavailableError(doc.unavailableReason());
    return value;
  }

  #doc(url: string): RefreshingDocument<OidcMetadata> {
    let doc = this.#docs.get(url);
    if (doc === undefined) {
      const o = this.#opts;
      doc = new RefreshingDocument({
        url,
        parse: (d) => parseMetadata(d, url),
        ...o,
        refreshIntervalMs: o.refreshIntervalMs ?? 24 * 60 * 60 * 1000,
        stats: this.stats,
        onFailure: (err, ageMs) => o.logger?.warn(
          { url, err: err instanceof Error ? err.message : String(err), haveLastGood: ageMs !== undefined },
          'OpenID configuration fetch failed',
        ),
      });
      this.#docs.set(url, doc);
    }
    return doc;
  }
}

