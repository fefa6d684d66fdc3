import type { RequestContext } from '../../gateway/context.ts';
import { GatewayError } from '../../gateway/errors.ts';
import type { Principal } from '../principal.ts';
import { CONTINUE, reject, type Policy, type Verdict } from '../policy.ts';
import { bearerToken, hasAnyRole, looksLikeJwt } from './credentials.ts';
import { matchKey, type KeyDigests } from './key-digest.ts';

/** The outcome of checking a token (implemented by the Entra verifier). */
export type TokenCheck =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly status: 401 | 403; readonly reason: string };

/** Verifies bearer JWTs; shared by every endpoint of a snapshot. */
export interface TokenVerifier {
  verify(token: string): Promise<TokenCheck>;
  /** A principal from the verified-token cache, synchronously, or undefined. */
  cached?(token: string): Principal | undefined;
}

export interface AuthPolicyOptions {
  readonly endpoint: string;
  readonly mode: 'key' | 'aad_token' | 'key_or_aad_token';
  readonly keys: KeyDigests;
  /** aad_token: the caller needs one of these in `roles` or `scp` (none listed: every valid token passes). */
  readonly roles: readonly string[];
  readonly verifier: TokenVerifier | undefined;
}

const MISSING = reject(new GatewayError('Unauthorized', 'Missing credentials: send Authorization: Bearer <key or token>.'));
const BAD_KEY = reject(new GatewayError('Unauthorized', 'Invalid key.', {
  'www-authenticate': 'Bearer realm="switchyard", error="invalid_token"',
}));


/**
 * Authentication by `auth_mode` (SPEC §2): API keys (primary/secondary), Entra-style
 * JWTs, or either. 401 for missing or bad credentials, 403 for a valid token that lacks
 * the role or comes from a tenant that is not allowed.
 */
export function authPolicy(opts: AuthPolicyOptions): Policy {
  const { mode, keys, roles, verifier } = opts;
  const keyPrincipals = {
    primary: Object.freeze<Principal>({ type: 'key', id: 'primary' }),
    secondary: Object.freeze<Principal>({ type: 'key', id: 'secondary' }),
  };

  function byKey(ctx: RequestContext, token: string): Verdict {
    const slot = matchKey(keys, token);
    if (!slot) return BAD_KEY;
    ctx.principal = keyPrincipals[slot];
    return CONTINUE;
  }

  const NO_ROLE = reject(new GatewayError('Forbidden', `The token has none of the roles this endpoint requires (${roles.join(', ')}).`));

  function admit(ctx: RequestContext, principal: Principal): Verdict {
    ctx.principal = principal;
    return hasAnyRole(principal, roles) ? CONTINUE : NO_ROLE;
  }

  function byToken(ctx: RequestContext, token: string): Verdict | Promise<Verdict> {
    if (!verifier) return BAD_KEY;
    // A token verified before costs no promise: most clients reuse theirs until it expires.
    const hit = verifier.cached?.(token);
    return hit ? admit(ctx, hit) : byTokenSlow(ctx, verifier, token);
  }

  async function byTokenSlow(ctx: RequestContext, v: TokenVerifier, token: string): Promise<Verdict> {
    const r = await v.verify(token);
    if (!r.ok) {
      return reject(r.status === 401
        ? new GatewayError('Unauthorized', `Invalid token: ${r.reason}`, {
          'www-authenticate': `Bearer realm="switchyard", error="invalid_token", error_description="${r.reason.replace(/"/g, "'")}"`,
        })
        : new GatewayError('Forbidden', r.reason));
    }
    return admit(ctx, r.principal);
  }

  return {
    name: `${opts.endpoint}.auth`,
    evaluate(ctx: RequestContext): Verdict | Promise<Verdict> {
      const token = bearerToken(ctx.req.headers.authorization);
      if (!token) return MISSING;
      if (mode === 'key') return byKey(ctx, token);
      if (mode === 'aad_token' || looksLikeJwt(token)) return byToken(ctx, token);
      return byKey(ctx, token);
    },
  };
}
