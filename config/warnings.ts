/**
 * Settings the schema accepts (so a SPEC §2 config loads) but this version does not act
 * on yet. Each one the user actually wrote gets a warning at load and in `validate`, until
 * the issue that implements it removes it from these lists. Works on the raw document:
 * zod fills defaults in (every deployment "has" `max_queue_wait_ms: 500`), so the parsed
 * config cannot tell a written key from a default one.
 *
 * Also weak keys ({@link keyWarnings}): warned about at load and in `validate`, by path.
 */

import { keyDigest } from './key-digest.ts';
import type { GatewayConfig } from './schema.ts';

/** Endpoint keys not enforced yet. */
export const ENDPOINT_KEYS = ['mirror_traffic', 'mirror_max_body_bytes', 'mirror_compare'] as const;

export const NOT_ENFORCED = 'accepted but not enforced by this version';

function obj(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function written(o: Record<string, unknown> | undefined, key: string): boolean {
  return o !== undefined && Object.hasOwn(o, key) && o[key] !== undefined && o[key] !== null;
}

/**
 * `endpoints.cars.rate_limit: accepted but not enforced by this version`, one per key the
 * document sets. Safe on any input (an invalid document gets the warnings it can).
 */
export function notEnforcedWarnings(doc: unknown): string[] {
  const root = obj(doc);
  const out: string[] = [];
  for (const [name, raw] of Object.entries(obj(root?.endpoints) ?? {})) {
    const ep = obj(raw);
    const at = `endpoints.${name}`;
    for (const k of ENDPOINT_KEYS) if (written(ep, k)) out.push(`${at}.${k}: ${NOT_ENFORCED}`);
  }
  return out;
}

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
