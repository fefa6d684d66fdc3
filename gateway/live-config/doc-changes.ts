import { endpointEtag } from './compose.ts';
import { AUDIT_SIZE, type AuditEntry, type LiveDoc } from './live-doc.ts';

/** An audit entry before the version it goes into is known. */
export type AuditDraft = Omit<AuditEntry, 'version' | 'previous_version' | 'at'>;

/** Overrides and regenerated keys (`endpoint` and `endpoint/slot`): those in force, or those superseded. */
export interface Active {
  readonly endpoints: ReadonlySet<string>;
  readonly keys: ReadonlySet<string>;
}

/** Every regenerated key of a document, as `endpoint/slot`. */
export function keyIds(doc: LiveDoc): string[] {
  return Object.entries(doc.keys).flatMap(([ep, slots]) => Object.keys(slots).map((slot) => `${ep}/${slot}`));
}

/** `doc` without what this replica saw the file supersede (`stale`). */
export function prunedDoc(doc: LiveDoc, stale: Active): LiveDoc {
  const { endpoints: eps, keys } = stale;
  if (!eps.size && !keys.size) return doc;
  const endpoints = Object.fromEntries(Object.entries(doc.endpoints).filter(([n]) => !eps.has(n)));
  const k: Record<string, LiveDoc['keys'][string]> = {};
  for (const [ep, slots] of Object.entries(doc.keys)) {
    const left = Object.fromEntries(Object.entries(slots).filter(([slot]) => !keys.has(`${ep}/${slot}`)));
    if (Object.keys(left).length) k[ep] = left;
  }
  return { ...doc, endpoints, keys: k };
}

/** The audit entries of dropping `stale` from `doc` (`etag` gives an endpoint's ETag now, the file's). */
function supersededEntries(doc: LiveDoc, stale: Active, etag: (endpoint: string) => string): AuditDraft[] {
  const entry = (endpoint: string, oldEtag: string, change: unknown): AuditDraft =>
    ({ by: 'file', action: 'superseded_by_file', endpoint, old_etag: oldEtag, new_etag: etag(endpoint), change });
  return [
    ...[...stale.endpoints].filter((n) => Object.hasOwn(doc.endpoints, n))
      .map((n) => entry(n, endpointEtag(doc.endpoints[n]?.config ?? undefined), null)),
    ...keyIds(doc).filter((k) => stale.keys.has(k))
      .map((k) => entry(k.split('/')[0] ?? '', '', { key_type: k.split('/')[1] })),
  ];
}

/**
 * The version after `doc`: `changes` applied (else `doc` without `stale`), the superseded
 * entries' audit and `entries` appended, the audit kept to its last AUDIT_SIZE.
 */
export function nextDoc(doc: LiveDoc, stale: Active, changes: Partial<Pick<LiveDoc, 'endpoints' | 'keys'>>,
  entries: readonly AuditDraft[], at: string, etag: (endpoint: string) => string): LiveDoc {
  const pruned = prunedDoc(doc, stale);
  const version = doc.version + 1;
  const audit = [...supersededEntries(doc, stale, etag), ...entries].map((e) => ({ ...e, version, previous_version: doc.version, at }));
  return {
    version,
    endpoints: changes.endpoints ?? pruned.endpoints,
    keys: changes.keys ?? pruned.keys,
    audit: [...doc.audit, ...audit].slice(-AUDIT_SIZE),
  };
}
