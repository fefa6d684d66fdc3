import { loadConfigFile } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { PolicyDeps } from '../policies/policy.ts';
import { adminServer } from './admin/admin-server.ts';
import { systemClock, type Clock } from './clock.ts';
import { Handler } from './handler.ts';
import { healthEvents, healthView, publishInstanceReady } from './health/health-view.ts';
import { Probers } from './health/prober.ts';
import { ReadyWaiters } from './health/ready-waiters.ts';
import { Lifecycle } from './lifecycle.ts';
import { invocationServer, Listeners, type GatewayAddresses } from './listeners.ts';
import type { LiveBackend } from './live-config/backend.ts';
import { FileConfigSource, type ReloadResult } from './live-config/config-source.ts';
import { FileBackend, stateFilePath } from './live-config/file-backend.ts';
import { LiveConfig } from './live-config/live-config.ts';
import { EMPTY_DOC, type LiveDoc } from './live-config/live-doc.ts';
import { createAccessLogger, createLogger, logDestination, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { RequestObserver } from './request-observer.ts';
import type { Snapshot } from './snapshot/compile.ts';
import { ConfigStore } from './snapshot/store.ts';
import { createRedisLiveBackend } from './state/redis-live-store.ts';
import { createSharedState, type SharedState } from './state/shared-state.ts';
import { LiveStateRegistry } from './state/state-registry.ts';
import { deadlines } from './coarse-timers.ts';
import { InstanceRegistry } from './upstream/instance.ts';

export type { GatewayAddresses } from './listeners.ts';
export { stateFilePath } from './live-config/file-backend.ts';

/** How long a start waits for the first probe round before it takes invocations anyway. */
const FIRST_ROUND_WAIT_MS = 2000;
export type { ReloadResult } from './live-config/config-source.ts';

/** How to start a gateway: from a file (reloadable) or an in-memory config (tests, demo). */
export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** The config as written (`${ENV}` kept), which admin edits are laid on; default: read from `configPath`, else `config`. */
  readonly raw?: Readonly<Record<string, unknown>>;
  /** What the loader noticed about the config (keys accepted but not enforced yet), logged with the snapshot's own. */
  readonly warnings?: readonly string[];
  /** The file the config came from: enables reload() and the default state file location. */
  readonly configPath?: string;
  readonly log?: Logger;
  /** Where access lines go; defaults to `log` when that is given, else to stdout. */
  readonly accessLog?: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly env?: NodeJS.ProcessEnv;
  /** Gateway processes sharing this machine's ports (per-process limits divide by it). */
  readonly workers?: number;
  /** Start beside a gateway already listening on the same ports (a rolling restart). */
  readonly replace?: boolean;
  /**
   * Where API edits are kept. Default: Redis when `state.redis_url` is set, else the state
   * file. A cluster worker passes the primary's (one owner writes, every worker applies).
   */
  readonly liveBackend?: LiveBackend;
  /** What `/metrics` answers. Default: this process's registry; a cluster worker passes the aggregate of all workers. */
  readonly metricsText?: () => Promise<{ readonly contentType: string; readonly text: string }>;
}

/**
 * A running Switchyard, as a composition root: it wires the registries whose live state
 * outlives any one config snapshot (instances and their health, policy state, keys), the
 * config store and its source, the request walk, and the listeners. Each has its own file.
 */
export class Gateway {
  readonly log: Logger;
  readonly accessLog: Logger;
  readonly metrics = new Metrics();
  readonly instances = new InstanceRegistry();
  readonly state = new LiveStateRegistry();
  readonly lifecycle = new Lifecycle();
  readonly store: ConfigStore;
  /** The file and the admin API's edits together: what is applied. */
  live!: LiveConfig;
  readonly #backend: LiveBackend;
  readonly source: FileConfigSource;
  readonly #policyDeps: PolicyDeps;
  /** The shared-state connection (Redis), when `state.redis_url` is set. */
  readonly shared: SharedState | undefined;
  readonly #listeners = new Listeners();
  readonly probers: Probers;
  readonly #readyWaiters: ReadyWaiters;
  #addresses: GatewayAddresses | undefined;

  private constructor(opts: GatewayOptions, backend: (log: Logger) => LiveBackend) {
    const clock = opts.clock ?? systemClock;
    const dest = opts.log ? undefined : logDestination();
    this.log = opts.log ?? createLogger(opts.config.logging.level, dest);
    this.accessLog = opts.accessLog ?? opts.log ?? createAccessLogger(dest ?? logDestination());
    this.#backend = backend(this.log);
    this.shared = createSharedState(opts.config, { log: this.log, metrics: this.metrics });
    this.#listeners.reportTo({ metrics: this.metrics, log: this.log, now: clock });
    this.#policyDeps = {
      clock,
      state: this.state,
      health: healthView(() => this.store.current, clock),
      workers: opts.workers ?? 1,
      log: this.log,
      keyOverride: (ep, slot) => this.live.keyOverride(ep, slot),
      timers: deadlines,
      gauges: this.metrics,
      shared: this.shared,
    };
    const current = (): Snapshot => this.store.current;
    const health = healthEvents(this.metrics, this.log, this.instances.health, current, clock);
    const mirror = { metrics: this.metrics, log: this.log, clock, random: opts.random ?? Math.random };
    this.store = new ConfigStore({ instances: this.instances, policy: this.#policyDeps, health, mirror }, this.state, this.log);
    publishInstanceReady(this.metrics, current, clock);
    this.#readyWaiters = new ReadyWaiters(this.instances.health, deadlines);
    this.metrics.readReadyWaiters(() => this.#readyWaiters.byEndpoint);
    this.probers = new Probers(clock, this.log);
    this.store.subscribe((next, prev) => this.probers.sync(next, prev));
    // on_redis_error applies at once; the Redis connection itself is made at start.
    this.store.subscribe((next, prev) => {
      if (this.shared) this.shared.onError = next.config.state?.on_redis_error ?? 'local';
      if (prev && prev.config.state?.redis_url !== next.config.state?.redis_url) {
        this.log.warn({ field: 'state.redis_url' }, 'the shared state connection changes only on restart');
      }
    });
    this.store.subscribe((next) => this.metrics.retainReaders((ep, d) => next.endpoints.get(ep)?.deployments.has(d) === true));
    this.store.subscribe((next, prev) => prev && this.#listeners.configChanged(next.config.server, prev.config.server, this.log));
    this.source = new FileConfigSource(opts.configPath, opts.env, (raw, cfg, warnings) => this.live.setFile(raw, cfg, warnings), this.metrics, this.log);
  }

  /** Lay the stored edits on the config and apply it: the first snapshot. */
  #begin(opts: GatewayOptions, raw: Readonly<Record<string, unknown>>, doc: LiveDoc, copy: FileBackend | undefined): void {
    let kept = -1;
    let warned = false;
    // A shared document is also kept in the state file path: a replica that starts while
    // Redis is out serves the last edits (and key revocations) it saw, not the file alone.
    const keep = copy && ((d: LiveDoc): void => {
      if (d.version === kept) return;
      kept = d.version;
      void copy.keepCopy(d).then((err) => {
        if (err && !warned) this.log.warn({ err: err.message }, 'cannot keep a local copy of the shared admin edits; a start while Redis is out will serve the config file alone');
        warned ||= err !== undefined;
      });
    });
    this.live = new LiveConfig({
      backend: this.#backend,
      env: opts.env,
      apply: (cfg, warnings) => this.store.apply(cfg, warnings),
      log: this.log,
      metrics: this.metrics,
      now: this.#policyDeps.clock,
      ownFile: !opts.config.state?.redis_url,
      ...(keep ? { keep } : {}),
    }, raw, opts.config, opts.warnings ?? [], doc);
    this.live.start();
    this.metrics.reloads.inc({ result: 'success' });
  }

  /**
   * The stored edits. A state file that cannot be read stops the start: serving without it
   * could bring back revoked keys. Redis out of reach does not: the last copy this replica
   * kept serves, and the edits follow once Redis answers.
   */
  async #loadDoc(copy: FileBackend | undefined): Promise<LiveDoc> {
    try {
      return await this.#backend.load();
    } catch (err) {
      if (!copy) {
        await this.#backend.close();
        throw err;
      }
      const doc = await copy.load().catch(() => EMPTY_DOC);
      this.log.warn({ backend: this.#backend.where, err: (err as Error).message, local_copy_version: doc.version },
        doc.version ? 'cannot read the admin edits; serving the last copy this replica kept until the shared state answers' : 'cannot read the admin edits and no local copy; serving the config file until the shared state answers');
      return doc;
    }
  }

  /** Load state, bind every listener, and start serving. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const redisUrl = opts.config.state?.redis_url;
    const gw = new Gateway(opts, (log) => opts.liveBackend
      ?? (redisUrl ? createRedisLiveBackend(redisUrl, { log }) : new FileBackend(stateFilePath(opts.config, opts.configPath))));
    const copy = redisUrl && !opts.liveBackend ? new FileBackend(stateFilePath(opts.config, opts.configPath)) : undefined;
    gw.#begin(opts, opts.raw ?? await rawOf(opts), await gw.#loadDoc(copy), copy);
    // Connected to the shared state, or known to be without it (at most about a second):
    // limits then start from Redis's buckets rather than a moment of local fallback.
    await gw.shared?.settled;
    try {
      await gw.#listen(opts);
    } catch (err) {
      // A later listener failed (say the admin port is taken): release what was bound.
      await gw.close();
      throw err;
    }
    gw.lifecycle.ready = true;
    return gw;
  }

  get addresses(): GatewayAddresses {
    if (!this.#addresses) throw new Error('gateway not listening');
    return this.#addresses;
  }

  get draining(): boolean {
    return this.lifecycle.draining;
  }

  async #listen(opts: GatewayOptions): Promise<void> {
    const cfg = opts.config;
    const lc = this.lifecycle;
    const handler = new Handler({
      snapshot: () => this.store.current,
      draining: () => lc.draining,
      closing: () => lc.closing,
      observer: new RequestObserver(this.metrics, this.accessLog, this.log, cfg.logging.access_log),
      onStart: () => lc.enter(),
      onEnd: () => lc.leave(),
      clock: this.#policyDeps.clock,
      random: opts.random ?? Math.random,
      readyWaiters: this.#readyWaiters,
    });
    const serve = handler.serve.bind(handler);
    const admin = adminServer(cfg, {
      snapshot: () => this.store.current,
      // SPEC §2: /readyz is 200 only once the first probe round has run.
      ready: () => lc.ready && this.probers.firstRoundDone,
      draining: () => lc.draining,
      metrics: this.metrics,
      metricsText: opts.metricsText ?? (async () => ({ contentType: this.metrics.registry.contentType, text: await this.metrics.registry.metrics() })),
      log: this.log,
      accessLog: this.accessLog,
      now: this.#policyDeps.clock,
      policy: this.#policyDeps,
      live: this.live,
    });
    const s = cfg.server;
    const headerMs = s.client_header_timeout_ms;
    // Every listener binds with reusePort: a new gateway process can start on the same
    // ports beside this one, which then drains (a rolling restart with nothing refused).
    const at = (spec: GatewayConfig['server']['listen']) => ({ ...spec, reusePort: true });
    const [adminAt] = await this.#listeners.bind([{ kind: 'admin', server: admin, at: at(s.admin_listen) }], opts.replace);
    // Invocations are taken only once the first probe round has run: a process starting
    // beside another (a rolling restart) must not take connections it cannot serve yet.
    // At most FIRST_ROUND_WAIT_MS: a probe that hangs until its timeout holds nobody back longer.
    await Promise.race([this.probers.firstRound(), new Promise((r) => setTimeout(r, FIRST_ROUND_WAIT_MS).unref())]);
    const specs: Parameters<Listeners['bind']>[0] = [{ kind: 'public', server: invocationServer('public', serve, headerMs), at: at(s.listen) }];
    if (s.private_listen) specs.push({ kind: 'private', server: invocationServer('private', serve, headerMs), at: at(s.private_listen) });
    const bound = await this.#listeners.bind(specs, opts.replace);
    this.#addresses = { public: bound[0]!, private: s.private_listen ? bound[1] : undefined, admin: adminAt! };
  }

  /** Apply a validated config (swap the snapshot); listener addresses need a restart. */
  apply(cfg: GatewayConfig): Snapshot {
    return this.live.setFileNow(cfg, cfg, []);
  }

  /** Re-read the config file; an invalid file is refused and the running config stays. */
  reload(): Promise<ReloadResult> {
    return this.source.reload();
  }

  /**
   * Graceful stop: stop accepting, answer new requests on open connections with 503,
   * let in-flight requests finish for up to `shutdown_grace_ms`, then close everything.
   * Calling it again while draining returns the same drain, never a faster one.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#drain();
    return this.#shutdown;
  }
  #shutdown: Promise<void> | undefined;

  async #drain(): Promise<void> {
    await this.lifecycle.drain(this.store.current.config.server.shutdown_grace_ms, () => this.#listeners.stopInvocations(), () => this.#listeners.openConnections, this.log);
    await this.close();
  }

  /** Close listeners and pools at once; wait for the state file to be up to date. */
  async close(): Promise<void> {
    this.probers.close();
    this.#listeners.closeAll();
    await this.instances.close();
    await this.shared?.close();
    await this.live?.settled();
    await this.#backend.close();
    this.log.flush?.();
    this.accessLog.flush?.();
  }
}

/** The config file as written, for a start given only the parsed config and its path. */
async function rawOf(opts: GatewayOptions): Promise<Readonly<Record<string, unknown>>> {
  if (opts.configPath) {
    const r = await loadConfigFile(opts.configPath, opts.env);
    if (r.ok) return r.raw;
  }
  return opts.config;
}
