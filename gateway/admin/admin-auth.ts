import type { IncomingMessage } from 'node:http';
import type { TokenVerifier } from '../../policies/auth/auth-policy.ts';
import { bearerToken, hasAnyRole, looksLikeJwt } from '../../policies/auth/credentials.ts';
import { keyDigest, matchDigest } from '../../policies/auth/key-digest.ts';
import type { Principal } from '../../policies/principal.ts';
import { GatewayError } from '../errors.ts';

/**
 * Who may use /admin (SPEC §5): a Bearer admin key (`admin.keys`, literal or sha256
 * digest), or an Entra token carrying one of `admin.entra_roles`.
 */
export class AdminAuth {
  readonly #digests: readonly Buffer[];
  readonly #roles: readonly string[];
  readonly #verifier: TokenVerifier | undefined;

  constructor(keys: readonly string[], roles: readonly string[], verifier: TokenVerifier | undefined) {
    this.#digests = keys.filter((k) => k !== '').map(keyDigest);
    this.#roles = roles;
    this.#verifier = verifier;
  }

  /** The caller, or a 401/403 error. */
  async check(req: IncomingMessage): Promise<Principal | GatewayError> {
    const token = bearerToken(req.headers.authorization);
    if (!token) return new GatewayError('Unauthorized', 'Admin API: send Authorization: Bearer <admin key or token>.');
    const match = matchDigest(this.#digests, token);
    if (match >= 0) return { type: 'admin_key', id: `admin-key-${match + 1}` };
    if (this.#verifier && this.#roles.length && looksLikeJwt(token)) {
      const r = await this.#verifier.verify(token);
      if (!r.ok) return new GatewayError(r.status === 401 ? 'Unauthorized' : 'Forbidden', `Admin API: ${r.reason}`);
      if (!hasAnyRole(r.principal, this.#roles)) {
        return new GatewayError('Forbidden', `Admin API: the token has none of the roles ${this.#roles.join(', ')}.`);
      }
      return r.principal;
    }
    return new GatewayError('Unauthorized', 'Admin API: invalid credentials.');
  }
}
