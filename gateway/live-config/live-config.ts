import { setTimeout as sleep } from 'node:timers/promises';
import { digestString, type KeySlot } from '../../config/key-digest.ts';
import { parseConfig } from '../../config/load.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import type { ConfigIssue } from '../../config/validate.ts';
import type { Principal } from '../../policies/principal.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import type { LiveBackend } from './backend.ts';
import { compose, configuredDigest, digestKeys, endpointEtag, endpointsOf, keyOverrides, own, type Composed, type Raw } from './compose.ts';
import { auditable, checkName, endpointAfter, ifMatches, invalid, liveEndpoint, removalIssues, who, type EditOutcome, type EditRequest } from './edit.ts';
import { keyIds, nextDoc, prunedDoc, type Active, type AuditDraft } from './doc-changes.ts';
import { rawDigest, type AuditEntry, type EndpointOverride, type LiveDoc } from './live-doc.ts';

export type { EditOutcome, EditRequest, EndpointEdit } from './edit.ts';

export interface LiveConfigDeps {
  readonly backend: LiveBackend;
  readonly env: NodeJS.ProcessEnv | undefined;
  /** Compile and swap a validated config in (ConfigStore.apply). */
  readonly apply: (cfg: GatewayConfig, warnings: readonly string[]) => Snapshot;
  readonly log: Logger;
  readonly metrics: Pick<Metrics, 'reloads' | 'liveVersion' | 'liveInStep'>;
  readonly now: () => number;
  /**
   * The document belongs to this config file alone (the state file, not a Redis shared by
   * replicas): what the file superseded while the gateway was down is dropped at start, as
   * at a reload. With a shared document only a change this replica sees drops anything: a
   * replica whose file differs must not erase the others' edits.
   */
  readonly ownFile: boolean;
  /** Called with every document that comes into force (a local copy of a shared one). */
  readonly keep?: (doc: LiveDoc) => void;
}

/** Optimistic writes: how often an edit is retried when another writer got there first. */
const MAX_ATTEMPTS = 10;
/** The whole document (a hundred audit entries included) stays under this. */
const MAX_DOC_BYTES = 4 * 1024 * 1024;

type Resolved = ({ ok: true; config: GatewayConfig; warnings: readonly string[] } & Composed) | { ok: false; issues: readonly ConfigIssue[] };


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
  #warnings: readonly string[];
  #raw: Readonly<Record<string, Raw>> = {};
  #sources: ReadonlyMap<string, 'file' | 'api'> = new Map();
  #keys: ReadonlyMap<string, Buffer> = new Map();
  /** What was in force at the last full install: what turns superseded from there is dropped from the store. */
  #active: Active = { endpoints: new Set(), keys: new Set() };
  /** Superseded by what this replica saw, and still in the stored document. */
  #stale: Active = { endpoints: new Set(), keys: new Set() };
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
    if (deps.ownFile) this.#active = { endpoints: new Set(Object.keys(this.#doc.endpoints)), keys: new Set(keyIds(this.#doc)) };
    const r = this.#resolve(this.#file, this.#doc, this.#config, this.#warnings);
    let snap: Snapshot;
    if (r.ok) {
      snap = this.#install(r);
    } else {
      // The stored edits do not fit this file (it changed while the gateway was down): the
      // file alone serves, with the regenerated keys that still apply to it; the edits stay
      // stored, and the log says which fields clash.
      deps.log.error({ backend: deps.backend.where, issues: r.issues }, 'the stored admin edits do not validate on top of this config file; serving the file alone');
      deps.metrics.liveInStep.set(0);
      snap = this.#installKeysOnly(this.#config, this.#warnings, this.#file);
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
    return endpointEtag(own(this.#raw, endpoint));
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
    return this.#install(r);
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
        const ep = liveEndpoint(this.#config, endpoint);
        if (!ep) throw new GatewayError('EndpointNotFound');
        const at = new Date(this.#deps.now()).toISOString();
        const etag = this.etag(endpoint);
        const keys = prunedDoc(doc, this.#stale).keys;
        const next = this.#next(doc, {
          keys: { ...keys, [endpoint]: { ...own(keys, endpoint), [slot]: { digest: digestString(digest), replaces: configuredDigest(ep.keys?.[slot]), at, by: who(by) } } },
        }, [{ by: who(by), action: 'regenerate_key', endpoint, old_etag: etag, new_etag: etag, change: { key_type: slot } }]);
        if (await this.#store(doc, next, attempt)) {
          this.#applyCurrent();
          return;
        }
      }
      throw new GatewayError('Conflict', 'Other edits kept landing first; retry.');
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
    checkName(name, req.edit.kind);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const doc = this.#doc;
      const current = own(this.#raw, name);
      const etag = endpointEtag(current);
      if (req.ifMatch !== undefined && !ifMatches(req.ifMatch, etag)) {
        throw new GatewayError('PreconditionFailed', current
          ? `Endpoint ${name} changed since it was read (its ETag is now "${etag}"); read it again and retry.`
          : `Endpoint ${name} does not exist (If-Match needs an existing endpoint).`);
      }
      if (req.createOnly && current) throw new GatewayError('PreconditionFailed', `Endpoint ${name} exists already (If-None-Match: *).`);
      const written = endpointAfter(name, current, req.edit);
      const before = liveEndpoint(this.#config, name);
      const newEtag = endpointEtag(written ?? undefined);
      if (newEtag === etag) return { created: false, unchanged: true, before, after: before, etag, docVersion: doc.version };
      // Validated as written, keys included (a key the schema refuses must be refused, not
      // digested into one nobody can send); stored with its keys digested.
      const check = this.#candidate(doc, name, written, req);
      const r = this.#resolve(this.#file, check);
      const issues = r.ok ? [] : [...r.issues];
      issues.push(...removalIssues(name, before, written));
      if (!r.ok || issues.length) throw invalid(issues);
      const outcome: EditOutcome = { created: !current, unchanged: false, before, after: liveEndpoint(r.config, name), etag: newEtag, docVersion: doc.version };
      if (req.dryRun) return outcome;
      const stored = this.#candidate(doc, name, written && digestKeys(written, this.#deps.env), req);
      const bytes = Buffer.byteLength(JSON.stringify(stored));
      if (bytes > MAX_DOC_BYTES) throw invalid([{ path: `endpoints.${name}`, message: `the stored edits would take ${bytes} bytes, over ${MAX_DOC_BYTES}; remove endpoints made through the API, or move them into the config file` }]);
      if (await this.#store(doc, stored, attempt)) {
        this.#applyCurrent();
        return { ...outcome, docVersion: stored.version };
      }
    }
    throw new GatewayError('Conflict', 'Other edits kept landing first; retry.');
  }

  /** The document an edit makes: the endpoint's override set (or dropped when it equals the file's again), audited. */
  #candidate(doc: LiveDoc, name: string, written: Raw | null, req: EditRequest): LiveDoc {
    const fileEndpoint = own(endpointsOf(this.#file), name);
    const base = rawDigest(fileEndpoint);
    const endpoints: Record<string, EndpointOverride> = { ...prunedDoc(doc, this.#stale).endpoints };
    delete endpoints[name];
    // Back to exactly the file's endpoint (or gone where the file has none): the file's again.
    const asFile = written === null ? fileEndpoint === undefined : endpointEtag(written) === endpointEtag(fileEndpoint);
    if (!asFile) Object.defineProperty(endpoints, name, { value: { config: written, base, at: new Date(this.#deps.now()).toISOString(), by: who(req.who) }, enumerable: true, writable: true, configurable: true });
    const current = own(this.#raw, name);
    const action = req.edit.kind === 'put' ? (current ? 'replace' : 'create') : req.edit.kind;
    return this.#next(doc, { endpoints }, [{ by: who(req.who), action, endpoint: name, old_etag: endpointEtag(current), new_etag: endpointEtag(written ?? undefined), change: auditable(req.edit) }]);
  }

  /** The next document version: `changes` applied, what this replica saw the file supersede dropped and audited. */
  #next(doc: LiveDoc, changes: Partial<Pick<LiveDoc, 'endpoints' | 'keys'>>, entries: readonly AuditDraft[]): LiveDoc {
    return nextDoc(doc, this.#stale, changes, entries, new Date(this.#deps.now()).toISOString(), (n) => this.etag(n));
  }

  /** Compare-and-set `next` over `doc`. False when another writer was first (its document is taken). */
  async #store(doc: LiveDoc, next: LiveDoc, attempt: number): Promise<boolean> {
    let r;
    try {
      r = await this.#deps.backend.write(doc.version, next);
    } catch (err) {
      const unknown = (err as { outcome?: string }).outcome === 'unknown';
      this.#deps.log.error({ backend: this.#deps.backend.where, err: (err as Error).message }, unknown ? 'an admin edit may or may not have been stored' : 'cannot store an admin edit; nothing changed');
      throw new GatewayError('LiveStoreUnavailable', unknown
        ? `The change was sent to ${this.#deps.backend.where} but not confirmed; it may have landed. Read the endpoint (GET) before retrying.`
        : `The change could not be stored (${this.#deps.backend.where}); nothing changed.`);
    }
    if (!r.ok) {
      // The store is the truth, even at a lower version (a Redis that lost its data): take it
      // and retry, after a short random pause so racing writers do not collide again.
      this.#doc = r.current;
      this.#applyCurrent();
      await sleep(Math.random() * 5 * (attempt + 1));
      return false;
    }
    this.#doc = next;
    for (const e of next.audit.filter((a) => a.version === next.version)) this.#deps.log.info({ audit: e }, 'config changed');
    return true;
  }

  /**
   * A document another writer stored: apply it. Any other version, not only a higher one:
   * the store is the truth, and a Redis that lost its data holds an older one every replica
   * must follow.
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
      // Empty (a Redis restarted without persistence, or flushed): write back what this replica
      // has. Merely older: follow it (which replica's copy would be newer cannot be told).
      if (doc.version === 0 && await this.#restore(doc)) return;
    }
    this.#doc = doc;
    this.#applyCurrent();
  }

  /**
   * The store is empty although this replica applied edits: it lost its data (a Redis
   * restarted without persistence, or flushed). Following it would undo every edit, revoked
   * keys coming back, so the replica writes what it has back instead, as version 1. True when
   * that landed (another replica may have been first: its copy is then followed).
   */
  async #restore(stored: LiveDoc): Promise<boolean> {
    const mine = this.#doc;
    try {
      const r = await this.#deps.backend.write(stored.version, { ...mine, version: stored.version + 1 });
      if (!r.ok) return false;
    } catch {
      return false;
    }
    this.#doc = { ...mine, version: stored.version + 1 };
    this.#deps.log.warn({ backend: this.#deps.backend.where, stored_version: stored.version, restored_version: mine.version }, 'the shared store lost the admin edits; this replica wrote back the ones it had');
    this.#applyCurrent();
    return true;
  }

  /**
   * Re-apply the file and the document in force. A document that does not validate here
   * keeps the running endpoints (and says so, in the log and `switchyard_live_config_in_step`),
   * but its regenerated keys still apply: a key revoked elsewhere must not keep working here.
   */
  #applyCurrent(): void {
    const r = this.#resolve(this.#file, this.#doc);
    if (r.ok) {
      this.#install(r);
      return;
    }
    this.#deps.metrics.reloads.inc({ result: 'failure' });
    this.#deps.metrics.liveInStep.set(0);
    this.#deps.log.error({ backend: this.#deps.backend.where, version: this.#doc.version, issues: r.issues }, 'the live document does not validate on this replica; its endpoints stay as they were, its keys apply');
    this.#installKeysOnly(this.#config, this.#warnings, this.#rawDoc());
  }

  /** Compose and validate; the file's own parse when nothing is laid on it. */
  #resolve(file: Raw, doc: LiveDoc, known?: GatewayConfig, knownWarnings?: readonly string[]): Resolved {
    const composed = compose(file, doc);
    if (known && Object.keys(doc.endpoints).length === 0) return { ok: true, config: known, warnings: knownWarnings ?? [], ...composed };
    const r = parseConfig(composed.raw, this.#deps.env);
    return r.ok ? { ok: true, config: r.config, warnings: r.warnings, ...composed } : { ok: false, issues: r.issues };
  }

  /** Swap in a validated composition; queue dropping from the store what turned superseded since the last one. */
  #install(composed: Resolved & { ok: true }): Snapshot {
    const keys = keyOverrides(this.#doc, composed.config);
    const snap = this.#swap(composed.config, composed.warnings, keys.active, composed.raw, composed.sources);
    const superseded = { endpoints: new Set(composed.superseded), keys: new Set(keys.superseded) };
    this.#stale = {
      endpoints: new Set([...this.#active.endpoints].filter((n) => superseded.endpoints.has(n))),
      keys: new Set([...this.#active.keys].filter((k) => superseded.keys.has(k))),
    };
    this.#active = {
      endpoints: new Set(Object.keys(this.#doc.endpoints).filter((n) => !superseded.endpoints.has(n))),
      keys: new Set(keys.active.keys()),
    };
    this.#deps.metrics.liveInStep.set(1);
    this.#deps.metrics.liveVersion.set(this.#doc.version);
    if (this.#stale.endpoints.size || this.#stale.keys.size) void this.#serial(() => this.#dropStale()).catch(() => {});
    return snap;
  }

  /** The running endpoints, with the document's regenerated keys that apply to them. Drops nothing from the store. */
  #installKeysOnly(config: GatewayConfig, warnings: readonly string[], raw: Raw): Snapshot {
    const keys = keyOverrides(this.#doc, config).active;
    return this.#swap(config, warnings, keys, raw, this.#sources.size ? this.#sources : new Map(Object.keys(config.endpoints).map((n) => [n, 'file'])));
  }

  /** The running document as composed last (for a keys-only install). */
  #rawDoc(): Raw {
    return { ...this.#file, endpoints: this.#raw };
  }

  #swap(config: GatewayConfig, warnings: readonly string[], keys: ReadonlyMap<string, Buffer>, raw: Raw, sources: ReadonlyMap<string, 'file' | 'api'>): Snapshot {
    const prevKeys = this.#keys;
    this.#keys = keys;
    let snap: Snapshot;
    try {
      snap = this.#deps.apply(config, warnings);
    } catch (err) {
      this.#keys = prevKeys;
      throw err;
    }
    this.#config = config;
    this.#warnings = warnings;
    this.#raw = endpointsOf(raw);
    this.#sources = sources;
    this.#deps.keep?.(this.#doc);
    return snap;
  }

  /** Store the document without what the file superseded, so reverting the file does not bring it back. */
  async #dropStale(): Promise<void> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!this.#stale.endpoints.size && !this.#stale.keys.size) return;
      const doc = this.#doc;
      try {
        if (await this.#store(doc, this.#next(doc, {}, []), attempt)) {
          this.#stale = { endpoints: new Set(), keys: new Set() };
          return;
        }
      } catch {
        // Logged by #store; the next edit drops them as well.
        this.#deps.log.warn({ backend: this.#deps.backend.where }, 'edits the config file superseded are still stored; the next edit drops them');
        return;
      }
    }
  }
}
