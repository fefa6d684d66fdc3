import type { Principal } from '../principal.ts';

/**
 * How a caller's credential is read, the same for invocations and the admin API:
 * `Authorization: Bearer <key or token>` (SPEC §3).
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header || header.length < 8 || (header.charCodeAt(0) | 0x20) !== 0x62 /* b */) return undefined;
  if (header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined;
  const token = header.slice(7).trim();
  return token || undefined;
}

/** A JWT has three dot-separated parts (SPEC §3); a key never does. */
export function looksLikeJwt(token: string): boolean {
  const a = token.indexOf('.');
  if (a <= 0) return false;
  const b = token.indexOf('.', a + 1);
  return b > a + 1 && token.indexOf('.', b + 1) === -1;
}

/** True when `principal` holds one of `required` in `roles`/`scp` (an empty requirement always holds). */
export function hasAnyRole(principal: Principal, required: readonly string[]): boolean {
  if (required.length === 0) return true;
  const held = principal.roles ?? [];
  return required.some((r) => held.includes(r));
}
