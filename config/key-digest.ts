import { hash, timingSafeEqual } from 'node:crypto';

/**
 * How a configured key is written and compared (the loader's weak-key checks and the auth
 * policy use the same digest). Endpoint keys are held only as SHA-256 digests, in memory and at rest. A presented key
 * is hashed and compared with `timingSafeEqual` against every slot, so neither the
 * comparison time nor the slot order tells an attacker anything.
 */
export type KeySlot = 'primary' | 'secondary';

/** The digest of a configured key: `sha256:<hex>` is taken as is, a literal is hashed. */
export function keyDigest(value: string): Buffer {
  if (value.startsWith('sha256:')) return Buffer.from(value.slice(7), 'hex');
  return sha256(value);
}

/** SHA-256 of a UTF-8 string (one-shot: no Hash object per request). */
export function sha256(value: string): Buffer {
  return hash('sha256', value, 'buffer');
}

/** The `sha256:<hex>` form of a digest, for config files and state. */
export function digestString(digest: Buffer): string {
  return `sha256:${digest.toString('hex')}`;
}

/** Index of the digest `presented` matches in `digests`, or -1. Every digest is compared. */
export function matchDigest(digests: readonly Buffer[], presented: string): number {
  const d = sha256(presented);
  let match = -1;
  for (let i = 0; i < digests.length; i++) if (timingSafeEqual(digests[i]!, d) && match < 0) match = i;
  return match;
}
