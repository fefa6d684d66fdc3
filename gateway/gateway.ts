import { createServer } from 'node:http';
import { basename, dirname, join } from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import { adminAuthPolicy } from '../policies/auth/auth.ts';
import type { KeySlot } from '../policies/auth/key-digest.ts';
import type { HealthView, Policy, PolicyDeps } from '../policies/policy.ts';
import { adminRouter } from './admin/router.ts';
import { adminRoutes } from './admin/routes.ts';
import { systemClock, type Clock } from './clock.ts';
import { GatewayError } from './errors.ts';
import { Handler } from './handler.ts';
import { Lifecycle } from './lifecycle.ts';
import { invocationServer, Listeners, serverOptions, type GatewayAddresses } from './listeners.ts';
import { FileConfigSource, type ReloadResult } from './live-config/config-source.ts';
import { createAccessLogger, createLogger, logDestination, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { RequestObserver } from './request-observer.ts';
import type { Snapshot } from './snapshot/compile.ts';
import { ConfigStore } from './snapshot/store.ts';
import { KeyStore, KeySupersededError } from './state/key-store.ts';
import { LiveStateRegistry } from './state/state-registry.ts';
import { InstanceRegistry } from './upstream/instance.ts';

export type { GatewayAddresses } from './listeners.ts';
export type { ReloadResult } from './live-config/config-source.ts';

/** How to start a gateway: from a file (reloadable) or an in-memory config (tests, demo). */
export interface GatewayOptions {
  readonly config: GatewayConfig;
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
  readonly keyStore: KeyStore;
  readonly store: ConfigStore;
  readonly source: FileConfigSource;
  readonly #policyDeps: PolicyDeps;
  readonly #listeners = new Listeners();
  #addresses: GatewayAddresses | undefined;

  private constructor(opts: GatewayOptions, keyStore: KeyStore) {
    const clock = opts.clock ?? systemClock;
    const dest = opts.log ? undefined : logDestination();
    this.log = opts.log ?? createLogger(opts.config.logging.level, dest);
    this.accessLog = opts.accessLog ?? opts.log ?? createAccessLogger(dest ?? logDestination());
    this.keyStore = keyStore;
    this.#listeners.reportTo({ metrics: this.metrics, log: this.log, now: clock });
    this.#policyDeps = {
      clock,
      state: this.state,
      health: this.#healthView(),
      workers: opts.workers ?? 1,
      log: this.log,
      keyOverride: (ep, slot, configured) => keyStore.get(ep, slot, configured),
    };
    this.store = new ConfigStore({ instances: this.instances, policy: this.#policyDeps }, this.state, this.log);
    this.store.subscribe((next) => this.#publishInstances(next, clock()));
    // An endpoint removed from the config forgets its regenerated keys for good.
    this.store.subscribe((next) => keyStore.retainOnly(next.endpoints.keys()));
    this.store.subscribe((next, prev) => {
      if (!prev) return;
      this.#listeners.setHeaderTimeout(next.config.server.client_header_timeout_ms);
      for (const k of ['listen', 'private_listen', 'admin_listen'] as const) {
        if (JSON.stringify(prev.config.server[k]) !== JSON.stringify(next.config.server[k])) {
          this.log.warn({ field: `server.${k}` }, 'listener addresses change only on restart');
        }
      }
    });
    this.source = new FileConfigSource(opts.configPath, opts.env, (cfg, warnings) => this.store.apply(cfg, warnings), this.metrics, this.log);
    this.store.apply(opts.config, opts.warnings);
    this.metrics.reloads.inc({ result: 'success' });
  }

  /** Load state, bind every listener, and start serving. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const stateFile = opts.config.state?.file
      ?? (opts.configPath ? join(dirname(opts.configPath), `.${basename(opts.configPath)}.state.json`) : undefined);
    const keyStore = new KeyStore(stateFile ?? join(process.cwd(), '.switchyard-state', 'state.json'));
    await keyStore.load();
    const gw = new Gateway(opts, keyStore);
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

  #healthView(): HealthView {
    return {
      readyInstances: (endpoint, deployment) => {
        const d = this.store.current.endpoints.get(endpoint)?.deployments.get(deployment);
        const now = this.#policyDeps.clock();
        return d ? d.instances.filter((i) => i.takesTraffic(now)).length : 0;
      },
    };
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
    });
    const serve = handler.serve.bind(handler);
    const adminAuth = new WeakMap<Snapshot, Policy>();
    const route = adminRouter({
      routes: adminRoutes({
        snapshot: () => this.store.current,
        ready: () => lc.ready,
        draining: () => lc.draining,
        metrics: this.metrics,
        log: this.log,
        now: this.#policyDeps.clock,
        regenerateKey: (ep, slot, digest, by) => this.#regenerateKey(ep, slot, digest, by.id),
      }),
      auth: () => {
        const snap = this.store.current;
        let p = adminAuth.get(snap);
        if (!p) adminAuth.set(snap, p = adminAuthPolicy(snap.config, this.#policyDeps));
        return p;
      },
      log: this.log,
      accessLog: this.accessLog,
    });
    const headerMs = cfg.server.client_header_timeout_ms;
    const admin = createServer(serverOptions(headerMs), (req, res) => route(req, res, false));
    admin.on('checkContinue', (req, res) => route(req, res, true));
    const s = cfg.server;
    const specs: Parameters<Listeners['bind']>[0] = [{ kind: 'public', server: invocationServer('public', serve, headerMs), at: s.listen }];
    if (s.private_listen) specs.push({ kind: 'private', server: invocationServer('private', serve, headerMs), at: s.private_listen });
    const bound = await this.#listeners.bind([...specs, { kind: 'admin', server: admin, at: s.admin_listen }]);
    this.#addresses = { public: bound[0]!, private: s.private_listen ? bound[1] : undefined, admin: bound[bound.length - 1]! };
  }

  async #regenerateKey(endpoint: string, slot: KeySlot, digest: Buffer, by: string): Promise<void> {
    const configured = this.store.current.config.endpoints[endpoint]?.keys?.[slot];
    try {
      await this.keyStore.set(endpoint, slot, digest, configured, by);
    } catch (err) {
      if (err instanceof KeySupersededError) {
        throw new GatewayError('Conflict', 'The config file changed this key while the new one was being stored; the file\'s key is in force. Retry to regenerate it.');
      }
      // Whole or not at all: a key that could not be stored is not made effective, or a
      // restart would bring the old one back.
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.log.error({ file: this.keyStore.file, code }, 'cannot store a regenerated key');
      throw new GatewayError('InternalError', `The new key could not be stored (state file ${this.keyStore.file}: ${code}); the old key stays in force. Set state.file to a writable path.`);
    }
    this.store.refresh();
  }

  /**
   * `switchyard_instance_ready` for every instance of the snapshot (1 = takes traffic).
   * Series of instances no longer configured are dropped.
   */
  #publishInstances(snap: Snapshot, now: number): void {
    const g = this.metrics.instanceReady;
    g.reset();
    for (const ep of snap.endpoints.values()) {
      for (const d of ep.deployments.values()) {
        for (const i of d.instances) g.set({ endpoint: ep.name, deployment: d.name, instance: i.origin }, i.takesTraffic(now) ? 1 : 0);
      }
    }
  }

  /** Apply a validated config (swap the snapshot); listener addresses need a restart. */
  apply(cfg: GatewayConfig): Snapshot {
    return this.store.apply(cfg);
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
    const lc = this.lifecycle;
    lc.draining = true;
    const grace = this.store.current.config.server.shutdown_grace_ms;
    this.log.info({ in_flight: lc.inFlight, grace_ms: grace }, 'draining');
    this.#listeners.stopInvocations();
    if (!(await lc.idle(grace))) this.log.warn({ in_flight: lc.inFlight }, 'grace period over; closing remaining connections');
    lc.closing = true;
    await this.close();
  }

  /** Close listeners and pools at once; wait for the state file to be up to date. */
  async close(): Promise<void> {
    this.#listeners.closeAll();
    await this.instances.close();
    await this.keyStore.flush().catch((err: NodeJS.ErrnoException) => {
      this.log.error({ file: this.keyStore.file, code: err.code }, 'state file not up to date');
    });
    this.log.flush?.();
    this.accessLog.flush?.();
  }
}
