import { digestString, type KeySlot } from '../../config/key-digest.ts';
import { parseConfig } from '../../config/load.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import type { ConfigIssue } from '../../config/validate.ts';
import type { Principal } from '../../policies/principal.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import type { LiveBackend } from './backend.ts';
import {
  compose, configuredDigest, digestKeys, endpointEtag, endpointsOf, keepRedacted, keyOverrides, mergePatch, record, redactChange,
  type Raw,
} from './compose.ts';
import { AUDIT_SIZE, rawDigest, type AuditAction, type AuditEntry, type EndpointOverride, type LiveDoc } from './live-doc.ts';

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
  readonly dryRun: boolean;
  readonly who: Principal;
}

export interface EditOutcome {
  /** The endpoint did not exist before. */
  readonly created: boolean;
  /** The endpoint's parsed config before and after (undefined where it does not exist). */
  readonly before: GatewayConfig['endpoints'][string] | undefined;
  readonly after: GatewayConfig['endpoints'][string] | undefined;
  readonly etag: string;
  readonly docVersion: number;
}

export interface LiveConfigDeps {
  readonly backend: LiveBackend;
  readonly env: NodeJS.ProcessEnv | undefined;
  /** Compile and swap a validated config in (ConfigStore.apply). */
  readonly apply: (cfg: GatewayConfig, warnings: readonly string[]) => Snapshot;
  readonly log: Logger;
  readonly now: () => number;
}

/** Optimistic writes: how often an edit is retried when another writer got there first. */
const MAX_ATTEMPTS = 5;

function invalid(issues: readonly ConfigIssue[]): GatewayError {
  return new GatewayError('InvalidConfig', `The edit is not a valid config (${issues.length} problem${issues.length === 1 ? '' : 's'}); nothing changed.`, undefined, issues);
}

/** Whether an `If-Match` header (`"x"`, `W/"x"`, a list, or `*`) matches `etag` ('' when there is none). */
function ifMatches(header: string, etag: string): boolean {
  return header.split(',').some((t) => {
    const v = t.trim();
    if (v === '*') return etag !== '';
    return etag !== '' && v.replace(/^W\//, '') === `"${etag}"`;
  });
}

/** Past this, an audit entry keeps the size of a change, not the change: a hundred of them ride in every stored document. */
const MAX_AUDIT_CHANGE = 8192;

/** A change as the audit keeps it: keys redacted, and a large one summarised. */
function auditable(change: unknown): unknown {
  const c = redactChange(change);
  const bytes = Buffer.byteLength(JSON.stringify(c) ?? '');
  return bytes > MAX_AUDIT_CHANGE ? { not_shown: `a change of ${bytes} bytes` } : c;
}

function who(p: Principal): string {
  return `${p.type}:${p.id}`;
}

/**
 * The running config as the file and the admin API make it together. Every change — a file
 * reload, an API edit, a document another replica stored — goes one way: lay the live
 * document on the file's document ({@link compose}), validate the result exactly like a
 * file (`parseConfig`: `${ENV}`, schema, cross-field rules), compile and swap. An edit is
 * validated before it is stored and stored (compare-and-set on the document's version)
 * before it applies, so a change the store refused never serves, and two edits made from
 * the same version cannot both land.
 */
export class LiveConfig {
  readonly #deps: LiveConfigDeps;
  #file: Raw;
  #doc: LiveDoc;
  /** The config in force and the endpoint documents it came from. */
  #config: GatewayConfig;
  readonly #warnings: readonly string[];
  #raw: Readonly<Record<string, Raw>> = {};
  #sources: ReadonlyMap<string, 'file' | 'api'> = new Map();
  #keys: ReadonlyMap<string, Buffer> = new Map();
  /** Overrides and keys the file superseded, still in the stored document. */
  #stale: { endpoints: readonly string[]; keys: readonly string[] } = { endpoints: [], keys: [] };
  /** Edits, adopted documents and file changes run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(deps: LiveConfigDeps, file: Raw, config: GatewayConfig, warnings: readonly string[], doc: LiveDoc) {
    this.#deps = deps;
    this.#file = file;
    this.#doc = doc;
    this.#config = config;
    this.#warnings = warnings;
  }

  /**
   * Apply the file with the stored edits on it, and follow the documents other writers store.
   * Separate from the constructor: compiling asks {@link keyOverride}, so the owner must hold
   * this object before the first config compiles.
   */
  start(): Snapshot {
    const deps = this.#deps;
    const r = this.#resolve(this.#file, this.#doc, this.#config, this.#warnings);
    let snap: Snapshot;
    if (r.ok) {
      snap = this.#install(r, r.config, r.warnings);
    } else {
      // The stored edits do not fit this file (it changed while the gateway was down): the
      // file alone serves, the edits stay stored, and the log says which fields clash.
      deps.log.error({ backend: deps.backend.where, issues: r.issues }, 'the stored admin edits do not validate on top of this config file; serving the file alone');
      snap = this.#install({ raw: this.#file, sources: new Map(Object.keys(endpointsOf(this.#file)).map((n) => [n, 'file'])), superseded: [] }, this.#config, this.#warnings);
    }
    deps.backend.watch((next) => void this.#serial(() => this.#adopt(next)));
    return snap;
  }

  /** The version of the live document in force (0: nothing was ever edited). */
  get docVersion(): number {
    return this.#doc.version;
  }

  /** An endpoint's ETag ('' for none): the same on every replica that sees the same file and document. */
  etag(endpoint: string): string {
    return endpointEtag(this.#raw[endpoint]);
  }

  source(endpoint: string): 'file' | 'api' | undefined {
    return this.#sources.get(endpoint);
  }

  /** The last changes, newest first. */
  audit(): readonly AuditEntry[] {
    return [...this.#doc.audit].reverse();
  }

  /** The regenerated key in force for a slot (compile asks for every slot). */
  keyOverride(endpoint: string, slot: KeySlot): Buffer | undefined {
    return this.#keys.get(`${endpoint}/${slot}`);
  }

  /** The config file changed (or a config was given in memory): lay the edits on it and apply. Throws when invalid. */
  setFile(file: Raw, config: GatewayConfig, warnings: readonly string[]): Promise<Snapshot> {
    return this.#serial(() => this.setFileNow(file, config, warnings));
  }

  /** {@link setFile} at once, for a config given in memory (tests, the demo). */
  setFileNow(file: Raw, config: GatewayConfig, warnings: readonly string[]): Snapshot {
    const r = this.#resolve(file, this.#doc, config, warnings);
    if (!r.ok) throw invalid(r.issues);
    this.#file = file;
    return this.#install(r, r.config, r.warnings);
  }

  /** Create, replace, patch or delete an endpoint; validated, stored, then applied. */
  edit(req: EditRequest): Promise<EditOutcome> {
    return this.#serial(() => this.#edit(req));
  }

  /** Store a regenerated key's digest and make it effective; whole or not at all. */
  regenerateKey(endpoint: string, slot: KeySlot, digest: Buffer, by: Principal): Promise<void> {
    return this.#serial(async () => {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        const doc = this.#doc;
        const ep = this.#config.endpoints[endpoint];
        if (!ep) throw new GatewayError('EndpointNotFound');
        const at = new Date(this.#deps.now()).toISOString();
        const etag = this.etag(endpoint);
        const keys = this.#pruned(doc).keys;
        const next = this.#next(doc, {
          keys: { ...keys, [endpoint]: { ...keys[endpoint], [slot]: { digest: digestString(digest), replaces: configuredDigest(ep.keys?.[slot]), at, by: who(by) } } },
        }, [{ by: who(by), action: 'regenerate_key', endpoint, old_etag: etag, new_etag: etag, change: { key_type: slot } }]);
        if (!(await this.#store(doc, next))) continue;
        this.#applyCurrent();
        return;
      }
      throw new GatewayError('Conflict');
    });
  }

  /** Resolves once every queued change has run (tests, shutdown). */
  async settled(): Promise<void> {
    await this.#queue.catch(() => {});
  }

  #serial<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.#queue.then(fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #edit(req: EditRequest): Promise<EditOutcome> {
    const name = req.endpoint;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const doc = this.#doc;
      const current = this.#raw[name];
      const etag = endpointEtag(current);
      if (req.ifMatch !== undefined && !ifMatches(req.ifMatch, etag)) {
        throw new GatewayError('PreconditionFailed', current
          ? `Endpoint ${name} changed since it was read (its ETag is now "${etag}"); read it again and retry.`
          : `Endpoint ${name} does not exist (If-Match needs an existing endpoint).`);
      }
      const next = this.#endpointAfter(name, current, req.edit);
      const base = rawDigest(endpointsOf(this.#file)[name]);
      // An endpoint back to exactly the file's is the file's again; one the file lacks is simply gone.
      const override: EndpointOverride | undefined = next === null && base === '' ? undefined
        : { config: next, base, at: new Date(this.#deps.now()).toISOString(), by: who(req.who) };
      const endpoints = { ...this.#pruned(doc).endpoints };
      if (override) endpoints[name] = override;
      else delete endpoints[name];
      const action: AuditAction = req.edit.kind === 'put' ? (current ? 'replace' : 'create') : req.edit.kind;
      const change = auditable(req.edit.kind === 'put' ? req.edit.body : req.edit.kind === 'patch' ? req.edit.patch : null);
      const candidate = this.#next(doc, { endpoints }, [{ by: who(req.who), action, endpoint: name, old_etag: etag, new_etag: endpointEtag(next ?? undefined), change }]);
      const r = this.#resolve(this.#file, candidate);
      const issues = r.ok ? [] : [...r.issues];
      issues.push(...this.#removalIssues(name, next));
      if (!r.ok || issues.length) throw invalid(issues);
      const outcome: EditOutcome = {
        created: !current,
        before: this.#config.endpoints[name],
        after: r.config.endpoints[name],
        etag: endpointEtag(next ?? undefined),
        docVersion: candidate.version,
      };
      if (req.dryRun) return { ...outcome, docVersion: doc.version };
      if (!(await this.#store(doc, candidate))) continue;
      this.#applyCurrent();
      return outcome;
    }
    throw new GatewayError('Conflict', 'Other edits kept landing first; retry.');
  }

  /** The endpoint document an edit makes (null: deleted). Throws 404/400 for edits that cannot apply. */
  #endpointAfter(name: string, current: Raw | undefined, edit: EndpointEdit): Raw | null {
    if (edit.kind === 'delete') {
      if (!current) throw new GatewayError('EndpointNotFound');
      return null;
    }
    let body: unknown;
    if (edit.kind === 'put') {
      body = edit.body;
    } else {
      if (!current) throw new GatewayError('EndpointNotFound', `No endpoint ${name} to patch; create it with PUT.`);
      body = mergePatch(current, edit.patch);
    }
    const obj = record(body);
    if (!obj) throw new GatewayError('BadRequest', 'The body must be a JSON object: the endpoint\'s config, as under endpoints.NAME in the config file.');
    const kept = keepRedacted(obj, current);
    if (kept.missing.length) {
      throw invalid(kept.missing.map((slot) => ({ path: `endpoints.${name}.keys.${slot}`, message: '"<redacted>" keeps the current key, but the endpoint has none in this slot' })));
    }
    return digestKeys(kept.endpoint);
  }

  /** Azure's rule: a deployment serving live traffic now cannot be removed; set it to 0 first. */
  #removalIssues(name: string, next: Raw | null): ConfigIssue[] {
    const live = this.#config.endpoints[name];
    if (!live || next === null) return [];
    const kept = record(next.deployments) ?? {};
    return Object.entries(live.traffic)
      .filter(([d, w]) => w > 0 && !(d in kept))
      .map(([d, w]) => ({ path: `endpoints.${name}.deployments.${d}`, message: `has ${w}% of live traffic; set its traffic to 0 first, then remove it` }));
  }

  /** The next document version: `changes` applied, superseded entries dropped, audit appended. */
  #next(doc: LiveDoc, changes: Partial<Pick<LiveDoc, 'endpoints' | 'keys'>>, entries: readonly Omit<AuditEntry, 'version' | 'previous_version' | 'at'>[]): LiveDoc {
    const pruned = this.#pruned(doc);
    const version = doc.version + 1;
    const at = new Date(this.#deps.now()).toISOString();
    const audit = [...this.#supersededEntries(doc), ...entries].map((e) => ({ ...e, version, previous_version: doc.version, at }));
    return {
      version,
      endpoints: changes.endpoints ?? pruned.endpoints,
      keys: changes.keys ?? pruned.keys,
      audit: [...doc.audit, ...audit].slice(-AUDIT_SIZE),
    };
  }

  /** `doc` without what the file superseded. */
  #pruned(doc: LiveDoc): LiveDoc {
    const { endpoints: eps, keys } = this.#stale;
    if (!eps.length && !keys.length) return doc;
    const endpoints = { ...doc.endpoints };
    for (const n of eps) delete endpoints[n];
    const k: Record<string, LiveDoc['keys'][string]> = {};
    for (const [ep, slots] of Object.entries(doc.keys)) {
      const left = Object.fromEntries(Object.entries(slots).filter(([slot]) => !keys.includes(`${ep}/${slot}`)));
      if (Object.keys(left).length) k[ep] = left;
    }
    return { ...doc, endpoints, keys: k };
  }

  #supersededEntries(doc: LiveDoc): Omit<AuditEntry, 'version' | 'previous_version' | 'at'>[] {
    const eps = this.#stale.endpoints.filter((n) => n in doc.endpoints);
    const keys = this.#stale.keys.filter((k) => {
      const [ep = '', slot = ''] = k.split('/');
      return doc.keys[ep]?.[slot as KeySlot] !== undefined;
    });
    return [
      ...eps.map((endpoint) => ({ by: 'file', action: 'superseded_by_file' as const, endpoint, old_etag: endpointEtag(doc.endpoints[endpoint]?.config ?? undefined), new_etag: this.etag(endpoint), change: null })),
      ...keys.map((k) => ({ by: 'file', action: 'superseded_by_file' as const, endpoint: k.split('/')[0] ?? '', old_etag: '', new_etag: '', change: { key_type: k.split('/')[1] } })),
    ];
  }

  /** Compare-and-set `next` over `doc`. False when another writer was first (its document is adopted). */
  async #store(doc: LiveDoc, next: LiveDoc): Promise<boolean> {
    let r;
    try {
      r = await this.#deps.backend.write(doc.version, next);
    } catch (err) {
      this.#deps.log.error({ backend: this.#deps.backend.where, err: (err as Error).message }, 'cannot store an admin edit; nothing changed');
      throw new GatewayError('LiveStoreUnavailable', `The change could not be stored (${this.#deps.backend.where}); nothing changed.`);
    }
    if (!r.ok) {
      // The store is the truth, even at a lower version (a Redis that was flushed): take it and retry.
      this.#doc = r.current;
      this.#applyCurrent();
      return false;
    }
    this.#doc = next;
    for (const e of next.audit.filter((a) => a.version === next.version)) {
      this.#deps.log.info({ audit: e }, 'config changed');
    }
    return true;
  }

  /**
   * A document another writer stored: apply it. Any other version, not only a higher one: the
   * store is the truth, and a Redis that lost its data (restarted without persistence,
   * flushed) holds an older one every replica must follow.
   */
  async #adopt(delivered: LiveDoc): Promise<void> {
    let doc = delivered;
    if (doc.version === this.#doc.version) return;
    if (doc.version < this.#doc.version) {
      // Usually a delivery that waited behind this replica's own edit, older than what is in
      // force now; but a store that lost its data holds an older one too. Ask the store.
      try {
        doc = await this.#deps.backend.load();
      } catch {
        return;
      }
      if (doc.version === this.#doc.version) return;
    }
    this.#doc = doc;
    this.#applyCurrent();
  }

  /** Re-apply the file and the document in force; a failure keeps the running config (and says so). */
  #applyCurrent(): void {
    const r = this.#resolve(this.#file, this.#doc);
    if (!r.ok) {
      this.#deps.log.error({ backend: this.#deps.backend.where, version: this.#doc.version, issues: r.issues }, 'the live document does not validate on this replica; the running config stays');
      return;
    }
    this.#install(r, r.config, r.warnings);
  }

  /** Compose and validate; the parsed config when `known` is not given. */
  #resolve(file: Raw, doc: LiveDoc, known?: GatewayConfig, knownWarnings?: readonly string[]):
    | ({ ok: true; config: GatewayConfig; warnings: readonly string[] } & ReturnType<typeof compose>)
    | { ok: false; issues: readonly ConfigIssue[] } {
    const composed = compose(file, doc);
    // Nothing laid on the file: the file's own parse stands (no second parse on every reload).
    if (known && Object.keys(doc.endpoints).length === 0) return { ok: true, config: known, warnings: knownWarnings ?? [], ...composed };
    const r = parseConfig(composed.raw, this.#deps.env);
    return r.ok ? { ok: true, config: r.config, warnings: r.warnings, ...composed } : { ok: false, issues: r.issues };
  }

  /** Swap in a validated config, remember what it came from, and queue dropping what the file superseded. */
  #install(composed: ReturnType<typeof compose>, config: GatewayConfig, warnings: readonly string[]): Snapshot {
    const keys = keyOverrides(this.#doc, config);
    const prevKeys = this.#keys;
    this.#keys = keys.active;
    let snap: Snapshot;
    try {
      snap = this.#deps.apply(config, warnings);
    } catch (err) {
      this.#keys = prevKeys;
      throw err;
    }
    this.#config = config;
    this.#raw = endpointsOf(composed.raw);
    this.#sources = composed.sources;
    this.#stale = { endpoints: composed.superseded, keys: keys.superseded };
    if (composed.superseded.length || keys.superseded.length) void this.#serial(() => this.#dropStale()).catch(() => {});
    return snap;
  }

  /** Store the document without what the file superseded, so reverting the file does not bring it back. */
  async #dropStale(): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!this.#stale.endpoints.length && !this.#stale.keys.length) return;
      const doc = this.#doc;
      try {
        if (await this.#store(doc, this.#next(doc, {}, []))) {
          this.#stale = { endpoints: [], keys: [] };
          return;
        }
      } catch {
        // Logged by #store; the next edit drops them as well.
        return;
      }
    }
  }
}
