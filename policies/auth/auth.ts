import type { GatewayConfig } from '../../config/schema.ts';
import { GatewayError } from '../../gateway/errors.ts';
import type { Principal } from '../principal.ts';
import { CONTINUE, reject, type Policy, type PolicyContext, type PolicyDeps, type PolicyFactory, type Verdict } from '../policy.ts';
import { bearerToken, hasAnyRole, looksLikeJwt } from './credentials.ts';
import { createEntraVerifier } from './jwt/entra-verifier.ts';
import { JwksCacheRegistry } from './jwt/jwks-cache.ts';
import { OidcDiscovery } from './jwt/oidc-discovery.ts';
import { keyDigest, matchDigest, type KeySlot } from '../../config/key-digest.ts';

/** The outcome of checking a token (implemented by the Entra verifier). */
export type TokenCheck =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

/** Verifies bearer JWTs; one per `entra` section, shared by every endpoint and the admin API. */
export interface TokenVerifier {
  verify(token: string): Promise<TokenCheck>;
  /** A principal from the verified-token cache, synchronously, or undefined. */
  cached?(token: string): Principal | undefined;
}

/** A key that admits a caller, as its digest, and who the caller then is. */
export interface AcceptedKey {
  readonly digest: Buffer;
  readonly principal: Principal;
}

/** What {@link authenticator} checks a bearer credential against. */
export interface AuthSpec {
  /** Who is checked (`cars.auth`, `admin.auth`): the policy name. */
  readonly name: string;
  /** Keys, tokens, or either (`key_or_aad_token`: a credential shaped like a JWT is a token). */
  readonly mode: 'key' | 'aad_token' | 'key_or_aad_token';
  readonly keys: readonly AcceptedKey[];
  /** A token caller needs one of these in `roles` or `scp` (none listed: every valid token passes). */
  readonly roles: readonly string[];
  readonly verifier: TokenVerifier | undefined;
  /** Prefix of messages, so an admin caller knows which API refused it. */
  readonly messagePrefix?: string;
}

/**
 * Bearer authentication as one policy, used by every endpoint (SPEC §2 `auth_mode`) and by
 * the admin API (admin keys or an Entra token with an admin role): 401 for missing or bad
 * credentials, 403 for a valid token that lacks the role or comes from a tenant not allowed.
 * Sets `ctx.principal`. A key costs one SHA-256 and a constant-time compare per slot; a
 * token verified before costs no promise.
 */
export function authenticator(spec: AuthSpec): Policy {
  const { mode, roles, verifier } = spec;
  const digests = spec.keys.map((k) => k.digest);
  const principals = spec.keys.map((k) => k.principal);
  const pre = spec.messagePrefix ?? '';
  const MISSING = reject(new GatewayError('Unauthorized', `${pre}Missing credentials: send Authorization: Bearer <key or token>.`));
  const BAD_KEY = reject(new GatewayError('Unauthorized', `${pre}Invalid ${mode === 'aad_token' ? 'token' : 'key'}.`, {
    'www-authenticate': 'Bearer realm="switchyard", error="invalid_token"',
  }));
  const NO_ROLE = reject(new GatewayError('Forbidden', `${pre}The token has none of the roles required here (${roles.join(', ')}).`));

  function byKey(ctx: PolicyContext, token: string): Verdict {
    // Every key is compared, so timing does not tell which slot (or whether any) matched.
    const i = matchDigest(digests, token);
    if (i < 0) return BAD_KEY;
    ctx.principal = principals[i];
    return CONTINUE;
  }

  function admit(ctx: PolicyContext, principal: Principal): Verdict {
    ctx.principal = principal;
    return hasAnyRole(principal, roles) ? CONTINUE : NO_ROLE;
  }

  async function byTokenSlow(ctx: PolicyContext, v: TokenVerifier, token: string): Promise<Verdict> {
    const r = await v.verify(token);
    if (!r.ok) {
      return reject(r.status === 401
        ? new GatewayError('Unauthorized', `${pre}Invalid token: ${r.reason}`, {
          'www-authenticate': `Bearer realm="switchyard", error="invalid_token", error_description="${r.reason.replace(/"/g, "'")}"`,
        })
        : new GatewayError('Forbidden', `${pre}${r.reason}`));
    }
    return admit(ctx, r.principal);
  }

  function byToken(ctx: PolicyContext, token: string): Verdict | Promise<Verdict> {
    if (!verifier) return BAD_KEY;
    const hit = verifier.cached?.(token);
    return hit ? admit(ctx, hit) : byTokenSlow(ctx, verifier, token);
  }

  return {
    name: spec.name,
    evaluate(ctx: PolicyContext): Verdict | Promise<Verdict> {
      const token = bearerToken(ctx.headers.authorization);
      if (!token) return MISSING;
      if (mode === 'key') return byKey(ctx, token);
      if (looksLikeJwt(token)) return byToken(ctx, token);
      // Not shaped like a JWT: a key, or (aad_token) nothing worth a verifier's time.
      return mode === 'aad_token' ? BAD_KEY : byKey(ctx, token);
    },
  };
}

/**
 * The token verifier for a config's `entra` section, kept in the state registry: the same
 * settings get the same verifier (and its verified-token cache) across reloads, and the
 * key-set and discovery caches are shared by every verifier of the process.
 */
export function entraVerifier(cfg: GatewayConfig, deps: PolicyDeps): TokenVerifier | undefined {
  const entra = cfg.entra;
  if (!entra) return undefined;
  const jwks = deps.state.get('auth.jwks', () => new JwksCacheRegistry({ now: deps.clock, logger: deps.log }));
  const discovery = deps.state.get('auth.discovery', () => new OidcDiscovery({ now: deps.clock, logger: deps.log }));
  return deps.state.get(`auth.verifier:${JSON.stringify(entra)}`, () => createEntraVerifier({
    authority: entra.authority,
    tenants: entra.tenants,
    audiences: entra.audiences,
    clockSkewS: entra.clock_skew_s,
    fetchTimeoutMs: entra.fetch_timeout_ms,
    now: deps.clock,
    jwks,
    discovery,
    logger: deps.log,
  }));
}

const KEY_PRINCIPALS: Readonly<Record<KeySlot, Principal>> = {
  primary: Object.freeze({ type: 'key', id: 'primary' }),
  secondary: Object.freeze({ type: 'key', id: 'secondary' }),
};

/** Endpoint authentication by `auth_mode` (SPEC §2). Every endpoint has it. */
export const authFactory: PolicyFactory = {
  type: 'auth',
  stage: 'endpoint',
  create(scope, deps) {
    const ep = scope.endpointConfig;
    const keys: AcceptedKey[] = [];
    for (const slot of ['primary', 'secondary'] as const) {
      const configured = ep.keys?.[slot];
      const digest = deps.keyOverride(scope.endpoint, slot, configured) ?? (configured ? keyDigest(configured) : undefined);
      if (digest) keys.push({ digest, principal: KEY_PRINCIPALS[slot] });
    }
    return authenticator({
      name: `${scope.endpoint}.auth`,
      mode: ep.auth_mode,
      keys,
      roles: ep.roles,
      verifier: entraVerifier(scope.gateway, deps),
    });
  },
};

/**
 * Who may use /admin (SPEC §5): a Bearer admin key (`admin.keys`, literal or sha256 digest),
 * or an Entra token carrying one of `admin.entra_roles`. The same policy code as endpoints.
 */
export function adminAuthPolicy(cfg: GatewayConfig, deps: PolicyDeps): Policy {
  const keys = cfg.admin.keys.filter((k) => k !== '').map((k, i): AcceptedKey => ({
    digest: keyDigest(k),
    principal: Object.freeze({ type: 'admin_key', id: `admin-key-${i + 1}` }),
  }));
  const tokens = cfg.admin.entra_roles.length > 0 ? entraVerifier(cfg, deps) : undefined;
  return authenticator({
    name: 'admin.auth',
    mode: tokens ? 'key_or_aad_token' : 'key',
    keys,
    roles: cfg.admin.entra_roles,
    verifier: tokens,
    messagePrefix: 'Admin API: ',
  });
}
