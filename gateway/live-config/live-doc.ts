import { createHash } from 'node:crypto';
import { z } from 'zod';
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

// The schema of a stored document, checked whole: a backend reads what another process (or a
// hand with an editor, or redis-cli) wrote, and a replica adopts it as the config in force. A
// document that is only right at the top (`"endpoints": {"cars": null}`) would crash a
// starting replica and poison running ones, so every member is checked, and every object is
// strict: a member this version does not know could be a rule it would silently ignore.
const text = z.string();
const count = z.int().min(0);
const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/);

const endpointOverrideSchema = z.strictObject({
  config: z.record(z.string(), z.unknown()).nullable(),
  base: text,
  at: text,
  by: text,
});

const keyOverrideSchema = z.strictObject({
  digest,
  replaces: z.union([z.literal(''), digest]),
  at: text,
  by: text,
});

const auditEntrySchema = z.strictObject({
  version: count,
  previous_version: count,
  at: text,
  by: text,
  action: z.enum(['create', 'replace', 'patch', 'delete', 'regenerate_key', 'superseded_by_file']),
  endpoint: text,
  old_etag: text,
  new_etag: text,
  // Optional although every entry has it: JSON drops a member whose value is undefined, and
  // one such entry must not make the whole document unreadable.
  change: z.unknown().optional(),
});

const liveDocSchema = z.strictObject({
  version: count,
  endpoints: z.record(z.string(), endpointOverrideSchema),
  keys: z.record(z.string(), z.strictObject({ primary: keyOverrideSchema.optional(), secondary: keyOverrideSchema.optional() })),
  audit: z.array(auditEntrySchema).readonly(),
});

// The schema and the interfaces above must describe the same thing: this fails to compile
// when one changes without the other (in either direction; `change` aside, see above).
type Parsed = z.infer<typeof liveDocSchema>;
type ParsedEntry = Parsed['audit'][number];
type WithChange = Omit<Parsed, 'audit'> & { audit: readonly (ParsedEntry & { change: unknown })[] };
const sameShape: [WithChange extends LiveDoc ? true : false, LiveDoc extends Parsed ? true : false] = [true, true];
void sameShape;

/**
 * The live document `v` holds (a copy: what a backend read, parsed), or undefined when it is
 * not one, anywhere in it. Every document a backend reads (a file, Redis, a conflict's answer)
 * goes through this before anything uses it.
 */
export function parseLiveDoc(v: unknown): LiveDoc | undefined {
  const r = liveDocSchema.safeParse(v);
  // The cast covers only an absent `change`, which reads as the undefined it was.
  return r.success ? r.data as LiveDoc : undefined;
}

/** Whether `v` is a whole valid live document ({@link parseLiveDoc} without the copy). */
export function isLiveDoc(v: unknown): v is LiveDoc {
  return liveDocSchema.safeParse(v).success;
}

/** How much of a failed write may have reached the store; set on the errors a backend's write rejects with. */
export type WriteOutcome =
  /** Surely not stored: the store was not reached, or refused before changing anything. */
  | 'not_stored'
  /** May have been stored: the store went silent after it got the write (a timeout, a dropped connection). */
  | 'unknown';

/** A backend's write failed; {@link outcome} says whether it may have landed all the same. */
export class LiveStoreError extends Error {
  readonly outcome: WriteOutcome;

  constructor(message: string, outcome: WriteOutcome, options?: ErrorOptions) {
    super(message, options);
    this.name = 'LiveStoreError';
    this.outcome = outcome;
  }
}
