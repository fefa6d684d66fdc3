import type { GatewayConfig } from '../../config/schema.ts';
import type { ConfigIssue } from '../../config/validate.ts';
import type { Principal } from '../../policies/principal.ts';
import { GatewayError } from '../errors.ts';
import { keepRedacted, mergePatch, own, record, redactChange, type Raw } from './compose.ts';

/**
 * What an admin edit asks, and the checks on it that need no store: the name, If-Match,
 * the endpoint document it makes, Azure's removal rule, and how the audit keeps it.
 */

/** A change asked through the admin API. */
export type EndpointEdit =
  | { readonly kind: 'put'; readonly body: unknown }
  | { readonly kind: 'patch'; readonly patch: unknown }
  | { readonly kind: 'delete' };

export interface EditRequest {
  readonly endpoint: string;
  readonly edit: EndpointEdit;
  /** The `If-Match` header as sent, if any. */
  readonly ifMatch: string | undefined;
  /** `If-None-Match: *`: create only. */
  readonly createOnly?: boolean;
  readonly dryRun: boolean;
  readonly who: Principal;
}

export interface EditOutcome {
  /** The endpoint did not exist before. */
  readonly created: boolean;
  /** The edit changed nothing (nothing was stored or audited). */
  readonly unchanged: boolean;
  /** The endpoint's parsed config before and after (undefined where it does not exist). */
  readonly before: GatewayConfig['endpoints'][string] | undefined;
  readonly after: GatewayConfig['endpoints'][string] | undefined;
  readonly etag: string;
  readonly docVersion: number;
}

/** The rule the schema applies to endpoint names. */
const NAME = /^[a-z][a-z0-9-]{2,31}$/;

/** An endpoint document larger than this is refused (a thousand instances take about 40 KiB). */
export const MAX_ENDPOINT_BYTES = 256 * 1024;

/** Past this, an audit entry keeps the size of a change, not the change: a hundred of them ride in every stored document. */
const MAX_AUDIT_CHANGE = 8192;

export function invalid(issues: readonly ConfigIssue[]): GatewayError {
  return new GatewayError('InvalidConfig', `The edit is not a valid config (${issues.length} problem${issues.length === 1 ? '' : 's'}); nothing changed.`, undefined, issues);
}

/** A name no endpoint can have: 404 for an edit of an existing one, 400 for a PUT. */
export function checkName(name: string, kind: EndpointEdit['kind']): void {
  if (NAME.test(name)) return;
  if (kind !== 'put') throw new GatewayError('EndpointNotFound');
  throw invalid([{ path: 'endpoints', message: 'bad name: must be 3-32 characters of a-z, 0-9 and -, starting with a letter' }]);
}

/**
 * Whether an `If-Match` header matches `etag` ('' when there is none): `*` when it exists,
 * else one of the listed tags by strong comparison (RFC 9110 §13.1.1: a weak `W/"x"` never
 * matches). A bare tag without quotes, as the view's `etag` field reads, is taken too.
 */
export function ifMatches(header: string, etag: string): boolean {
  if (etag === '') return false;
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === `"${etag}"` || v === etag;
  });
}

/** Exactly `${NAME}`. */
const REFERENCE = /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/;

/**
 * `${...}` in what an admin sends: only a key may be a reference, and only exactly `${NAME}`.
 * Anywhere else the gateway would substitute its own environment into a value the views
 * show (a probe path, a header name) or send to an instance: one admin key would read every
 * secret the process holds. References the config file wrote stay as they are.
 */
function referenceIssues(name: string, sent: unknown, path: string[] = []): ConfigIssue[] {
  if (typeof sent === 'string') {
    if (!sent.includes('${')) return [];
    const inKeys = path.length === 2 && path[0] === 'keys';
    if (inKeys && REFERENCE.test(sent)) return [];
    const at = `endpoints.${name}${path.length ? `.${path.join('.')}` : ''}`;
    return [{ path: at, message: inKeys
      ? 'a key sent through the admin API is a value, sha256:<hex>, or exactly ${NAME}'
      : 'a ${...} reference is taken from the config file only; through the admin API write the value itself' }];
  }
  if (sent && typeof sent === 'object') return Object.entries(sent).flatMap(([k, v]) => referenceIssues(name, v, [...path, k]));
  return [];
}

/** The endpoint document an edit makes (null: deleted), as written: keys not digested yet. Throws 404/400 for edits that cannot apply. */
export function endpointAfter(name: string, current: Raw | undefined, edit: EndpointEdit): Raw | null {
  if (edit.kind === 'delete') {
    if (!current) throw new GatewayError('EndpointNotFound');
    return null;
  }
  const references = referenceIssues(name, edit.kind === 'put' ? edit.body : edit.patch);
  if (references.length) throw invalid(references);
  let body: unknown;
  if (edit.kind === 'put') {
    body = edit.body;
  } else {
    if (!current) throw new GatewayError('EndpointNotFound', `No endpoint ${name} to patch; create it with PUT.`);
    body = mergePatch(current, edit.patch);
  }
  const obj = record(body);
  if (!obj) throw new GatewayError('BadRequest', 'The body must be a JSON object: the endpoint\'s config, as under endpoints.NAME in the config file.');
  const bytes = Buffer.byteLength(JSON.stringify(obj));
  if (bytes > MAX_ENDPOINT_BYTES) {
    throw invalid([{ path: `endpoints.${name}`, message: `${bytes} bytes; an endpoint edited through the API holds at most ${MAX_ENDPOINT_BYTES}` }]);
  }
  const kept = keepRedacted(obj, current);
  if (kept.missing.length) {
    throw invalid(kept.missing.map((slot) => ({ path: `endpoints.${name}.keys.${slot}`, message: '"<redacted>" keeps the current key, but the endpoint has none in this slot' })));
  }
  return kept.endpoint;
}

/** Azure's rule: a deployment serving live traffic now cannot be removed; set it to 0 first. */
export function removalIssues(name: string, live: GatewayConfig['endpoints'][string] | undefined, next: Raw | null): ConfigIssue[] {
  if (!live || next === null) return [];
  const kept = record(next.deployments) ?? {};
  return Object.entries(live.traffic)
    .filter(([d, w]) => w > 0 && !Object.hasOwn(kept, d))
    .map(([d, w]) => ({ path: `endpoints.${name}.deployments.${d}`, message: `has ${w}% of live traffic; set its traffic to 0 first, then remove it` }));
}

/** A change as the audit keeps it: keys redacted, and a large one summarised. */
export function auditable(edit: EndpointEdit): unknown {
  const c = redactChange(edit.kind === 'put' ? edit.body : edit.kind === 'patch' ? edit.patch : null);
  const bytes = Buffer.byteLength(JSON.stringify(c) ?? '');
  return bytes > MAX_AUDIT_CHANGE ? { not_shown: `a change of ${bytes} bytes` } : c;
}

/** `admin_key:admin-key-1`, `aad_token:<oid>`. */
export function who(p: Principal): string {
  return `${p.type}:${p.id}`;
}

/** The live config of an endpoint, if it has one (own properties only). */
export function liveEndpoint(cfg: GatewayConfig, name: string): GatewayConfig['endpoints'][string] | undefined {
  return own(cfg.endpoints, name);
}
