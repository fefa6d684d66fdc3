import { substituteEnv, type EnvProblem } from '../../config/env.ts';
import { digestString, keyDigest, type KeySlot } from '../../config/key-digest.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import { rawDigest, type LiveDoc } from './live-doc.ts';

/** A raw document (YAML or JSON as written): plain objects, arrays and scalars. */
export type Raw = Readonly<Record<string, unknown>>;

/** What a key reads as in a view; written back in an edit it keeps the slot's key. */
export const REDACTED = '<redacted>';
export const SLOTS: readonly KeySlot[] = ['primary', 'secondary'];

export function record(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** `obj[key]` if `obj` has it as its own property (never one of Object.prototype's: `constructor`, `__proto__`). */
export function own<T>(obj: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return obj && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** Set `key` as an own data property, even `__proto__` (an assignment would set the prototype). */
function put(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/**
 * RFC 7396 JSON merge patch: a member set to null is removed, an object merges member by
 * member, anything else replaces. Twenty lines; no library needed for it. Members are own
 * data properties whatever their name, so `{"__proto__": ...}` in a patch is a member (which
 * the schema then refuses), never the result's prototype.
 */
export function mergePatch(target: unknown, patch: unknown): unknown {
  const p = record(patch);
  if (!p) return patch;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(record(target) ?? {})) put(out, k, v);
  for (const [k, v] of Object.entries(p)) {
    if (v === null) delete out[k];
    else put(out, k, mergePatch(own(out, k), v));
  }
  return out;
}

/** The digest form of a configured key ('' for none), as key overrides record what they replaced. */
export function configuredDigest(configured: string | undefined): string {
  return configured ? digestString(keyDigest(configured)) : '';
}

/** Exactly `${NAME}`: a reference each replica resolves from its own environment. */
const REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/**
 * An endpoint as it is persisted: every key that is not exactly `${NAME}` or a `sha256:`
 * digest is replaced by the digest of its value as the gateway reads it (`$$` unescaped,
 * `${NAME:-default}` and `prefix-${NAME}` substituted), so no key, and no default that is
 * one, is ever stored in clear. A value that does not substitute (an unset variable) is left
 * as written: it fails validation, and an invalid edit is never stored.
 */
export function digestKeys(endpoint: Raw, env: NodeJS.ProcessEnv = {}): Raw {
  const keys = record(endpoint.keys);
  if (!keys) return endpoint;
  const out: Record<string, unknown> = {};
  for (const [slot, v] of Object.entries(keys)) {
    if (typeof v !== 'string' || v === '' || REFERENCE.test(v) || v.startsWith('sha256:')) {
      put(out, slot, v);
      continue;
    }
    const problems: EnvProblem[] = [];
    const value = substituteEnv(v, env, problems);
    put(out, slot, problems.length || typeof value !== 'string' ? v : digestString(keyDigest(value)));
  }
  return { ...endpoint, keys: out };
}

/**
 * A view's `"<redacted>"` written back means "keep this slot's key": it is replaced by the
 * current endpoint's value (already a digest or a reference). Returns the slots that asked
 * for a key the endpoint does not have.
 */
export function keepRedacted(next: Raw, current: Raw | undefined): { readonly endpoint: Raw; readonly missing: readonly KeySlot[] } {
  const keys = record(next.keys);
  if (!keys) return { endpoint: next, missing: [] };
  const currentKeys = record(current?.keys);
  const out: Record<string, unknown> = { ...keys };
  const missing: KeySlot[] = [];
  for (const slot of SLOTS) {
    if (keys[slot] !== REDACTED) continue;
    const kept = currentKeys?.[slot];
    if (typeof kept === 'string') out[slot] = kept;
    else missing.push(slot);
  }
  return { endpoint: { ...next, keys: out }, missing };
}

/** An edit as the audit keeps it: every key value redacted (presence only). */
export function redactChange(change: unknown): unknown {
  const c = record(change);
  if (!c) return change;
  const keys = record(c.keys);
  if (!keys) return c;
  return { ...c, keys: Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, v === null ? null : REDACTED])) };
}

/** The ETag of an endpoint as written (keys digested first: no key goes into a hash in clear). */
export function endpointEtag(raw: Raw | undefined): string {
  return raw ? rawDigest(digestKeys(raw)) : '';
}

/** The file's raw endpoints. */
export function endpointsOf(raw: Raw): Readonly<Record<string, Raw>> {
  return (record(raw.endpoints) ?? {}) as Record<string, Raw>;
}

/** The file's document with the API's overrides laid on, and which overrides the file superseded. */
export interface Composed {
  readonly raw: Raw;
  /** Where each endpoint comes from. */
  readonly sources: ReadonlyMap<string, 'file' | 'api'>;
  /** Overrides whose endpoint the file changed since: the file wins, they are to be dropped. */
  readonly superseded: readonly string[];
}

/** Lay `doc`'s endpoint overrides on the file's document (see {@link LiveDoc} for the rule). */
export function compose(file: Raw, doc: LiveDoc): Composed {
  const fileEndpoints = endpointsOf(file);
  const endpoints: Record<string, unknown> = { ...fileEndpoints };
  const sources = new Map<string, 'file' | 'api'>(Object.keys(fileEndpoints).map((n) => [n, 'file']));
  const superseded: string[] = [];
  for (const [name, o] of Object.entries(doc.endpoints)) {
    if (o.base !== rawDigest(own(fileEndpoints, name))) {
      superseded.push(name);
      continue;
    }
    if (o.config === null) {
      delete endpoints[name];
      sources.delete(name);
    } else {
      put(endpoints, name, o.config);
      sources.set(name, 'api');
    }
  }
  return { raw: { ...file, endpoints }, sources, superseded };
}

/** Key overrides in force for a parsed config, and those it superseded (`endpoint/slot`). */
export function keyOverrides(doc: LiveDoc, cfg: GatewayConfig): { readonly active: ReadonlyMap<string, Buffer>; readonly superseded: readonly string[] } {
  const active = new Map<string, Buffer>();
  const superseded: string[] = [];
  for (const [endpoint, slots] of Object.entries(doc.keys)) {
    for (const slot of SLOTS) {
      const o = own(slots, slot);
      if (!o) continue;
      const ep = own(cfg.endpoints, endpoint);
      if (ep && o.replaces === configuredDigest(ep.keys?.[slot])) active.set(`${endpoint}/${slot}`, Buffer.from(o.digest.slice(7), 'hex'));
      else superseded.push(`${endpoint}/${slot}`);
    }
  }
  return { active, superseded };
}
