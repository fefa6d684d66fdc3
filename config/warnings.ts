/**
 * Weak keys ({@link keyWarnings}): warned about at load and in `validate`, by path. (Every
 * SPEC §2 setting is enforced now; the list of settings accepted but not yet acted on that
 * lived here is gone with the last of them.)
 */

import { keyDigest } from './key-digest.ts';
import type { GatewayConfig } from './schema.ts';

/** Shorter literal keys are warned about (not refused: a test setup may want them). */
export const MIN_KEY_LENGTH = 16;

/** The digest a key is compared by, as hex: `sha256:<hex>` as written, a literal hashed. */
function digestOf(key: string): string {
  return keyDigest(key).toString('hex');
}

/**
 * Weak keys in a valid config, by field path, never by value: a literal endpoint or admin
 * key shorter than {@link MIN_KEY_LENGTH} characters (it can be guessed), and an admin key
 * that is also an endpoint's key (every caller of that endpoint could use the admin API).
 */
export function keyWarnings(config: GatewayConfig): string[] {
  const out: string[] = [];
  const short = (path: string, key: string): void => {
    if (key !== '' && !key.startsWith('sha256:') && key.length < MIN_KEY_LENGTH) {
      out.push(`${path}: shorter than ${MIN_KEY_LENGTH} characters, easy to guess; use a long random key (e.g. openssl rand -base64 24)`);
    }
  };
  const endpointKeys: { path: string; digest: string }[] = [];
  for (const [name, ep] of Object.entries(config.endpoints)) {
    for (const slot of ['primary', 'secondary'] as const) {
      const key = ep.keys?.[slot];
      if (key === undefined) continue;
      const path = `endpoints.${name}.keys.${slot}`;
      short(path, key);
      endpointKeys.push({ path, digest: digestOf(key) });
    }
  }
  for (const [i, key] of config.admin.keys.entries()) {
    const path = `admin.keys.${i}`;
    short(path, key);
    if (key === '') continue;
    const digest = digestOf(key);
    const same = endpointKeys.filter((e) => e.digest === digest).map((e) => e.path);
    if (same.length) out.push(`${path}: the same key as ${same.join(' and ')}; every caller of that endpoint could use the admin API`);
  }
  return out;
}

/**
 * `priority.callers` entries that can never match: on a key-only endpoint the callers are the
 * key slots (`primary`, `secondary`); any other name (a typo such as `primery`) is dead.
 */
export function priorityWarnings(cfg: GatewayConfig): string[] {
  const out: string[] = [];
  for (const [name, ep] of Object.entries(cfg.endpoints)) {
    if (ep.auth_mode !== 'key' || !ep.priority) continue;
    for (const caller of Object.keys(ep.priority.callers)) {
      if (caller !== 'primary' && caller !== 'secondary') {
        out.push(`endpoints.${name}.priority.callers.${caller}: matches no caller (with auth_mode key the callers are primary and secondary)`);
      }
    }
  }
  return out;
}
