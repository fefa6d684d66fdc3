/**
 * Who a request acts for, once a credential was accepted. Logged and counted as
 * `auth` + `caller`; never carries the secret itself.
 */
export interface Principal {
  /** How the caller proved who it is. */
  readonly type: 'key' | 'aad_token' | 'admin_key';
  /** Key slot (`primary`/`secondary`), or the token's `oid` (else `appid`/`azp`/`sub`). */
  readonly id: string;
  /** Tenant of a token caller. */
  readonly tenant?: string;
  /** `roles` claim plus the space-separated `scp` scopes of a token caller. */
  readonly roles?: readonly string[];
}
