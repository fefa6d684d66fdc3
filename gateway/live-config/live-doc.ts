import { createHash } from 'node:crypto';
import type { KeySlot } from '../../config/key-digest.ts';

/**
 * The live document: every change made through the admin API, persisted (a state file
 * beside the config, or one Redis key shared by every replica) and applied on top of the
 * config file. It never holds a secret in clear: endpoint keys are `sha256:` digests, and
 * `${ENV}` references stay references (each replica substitutes its own environment).
 *
 * Precedence, in one rule: an API change stays in force while the config file still says
 * what it said when the change was made. Once the file changes that thing (the endpoint, or
 * for a regenerated key that key slot), the file wins and the change is dropped for good.
 */
export interface LiveDoc {
  /** Bumped by every write; 0 is the empty document nothing was ever written to. */
  readonly version: number;
  /** Endpoints created, replaced, patched or deleted through the API. */
  readonly endpoints: Readonly<Record<string, EndpointOverride>>;
  /** Keys regenerated through the API, per endpoint and slot. */
  readonly keys: Readonly<Record<string, Partial<Record<KeySlot, KeyOverride>>>>;
  /** The last {@link AUDIT_SIZE} changes, oldest first. */
  readonly audit: readonly AuditEntry[];
}

/** An endpoint as the API last wrote it. */
export interface EndpointOverride {
  /**
   * The endpoint as written (the JSON of a config file's `endpoints.NAME`: `${ENV}` kept,
   * keys as `sha256:` digests), or null: deleted through the API.
   */
  readonly config: Readonly<Record<string, unknown>> | null;
  /** {@link rawDigest} of the file's endpoint when the change was made; '' when the file had none. */
  readonly base: string;
  readonly at: string;
  readonly by: string;
}

/** A key regenerated through the API, held as a digest. */
export interface KeyOverride {
  /** `sha256:<hex>` of the new key. */
  readonly digest: string;
  /** `sha256:<hex>` of the configured key it replaced ('' for none): if that changes, the config wins. */
  readonly replaces: string;
  readonly at: string;
  readonly by: string;
}

export type AuditAction = 'create' | 'replace' | 'patch' | 'delete' | 'regenerate_key' | 'superseded_by_file';

/** One change, as `GET /admin/audit` lists it and the audit log line says it. */
export interface AuditEntry {
  /** The document version this change made, and the one before it. */
  readonly version: number;
  readonly previous_version: number;
  readonly at: string;
  /** `admin_key:admin-key-1`, `aad_token:<oid>`, or `file` for a change the config file made. */
  readonly by: string;
  readonly action: AuditAction;
  readonly endpoint: string;
  /** The endpoint's ETag before and after ('' where it did not exist). */
  readonly old_etag: string;
  readonly new_etag: string;
  /** What was asked: the merge patch, the new endpoint, or `{key_type}`; keys redacted. */
  readonly change: unknown;
}

/** How many changes the document keeps. */
export const AUDIT_SIZE = 100;

export const EMPTY_DOC: LiveDoc = Object.freeze({ version: 0, endpoints: {}, keys: {}, audit: [] });

/** JSON with object keys sorted, so equal documents are equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v);
}

/** A short digest of a raw endpoint (or '' for none): ETags and override bases. */
export function rawDigest(raw: unknown): string {
  if (raw === undefined || raw === null) return '';
  return createHash('sha256').update(canonicalJson(raw)).digest('base64url').slice(0, 22);
}

/** Whether `v` looks like a live document (what a backend reads back is checked with this). */
export function isLiveDoc(v: unknown): v is LiveDoc {
  const d = v as Partial<LiveDoc> | null;
  return !!d && typeof d === 'object' && typeof d.version === 'number' && Number.isInteger(d.version) && d.version >= 0
    && !!d.endpoints && typeof d.endpoints === 'object' && !!d.keys && typeof d.keys === 'object' && Array.isArray(d.audit);
}
