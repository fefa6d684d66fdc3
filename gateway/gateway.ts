import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, basename } from 'node:path';
import { loadConfigFile, formatIssues } from '../config/load.ts';
import type { GatewayConfig, HostPort } from '../config/schema.ts';
import { ConfigStore } from '../config/store.ts';
import type { Snapshot } from '../config/compile.ts';
import type { TokenVerifier } from '../policies/auth/auth-policy.ts';
import type { KeySlot } from '../policies/auth/key-digest.ts';
import { JwksCacheRegistry } from '../policies/auth/jwt/jwks-cache.ts';
import { OidcDiscovery } from '../policies/auth/jwt/oidc-discovery.ts';
import { createEntraVerifier } from '../policies/auth/jwt/entra-verifier.ts';
import { AdminAuth } from './admin/admin-auth.ts';
import { GatewayError } from './errors.ts';
import { adminHandler } from './admin/admin-server.ts';
import { systemClock, type Clock } from './clock.ts';
import type { ListenerKind } from './context.ts';
import { createAccessLogger, createLogger, logDestination, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { ProxyHandler } from './proxy-handler.ts';
import { RequestObserver } from './request-observer.ts';
import { KeyStore } from './state/key-store.ts';
import { InstanceRegistry } from './upstream/instance.ts';

/** How to start a gateway: from a file (reloadable) or an in-memory config (tests, demo). */
export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** The file the config came from: enables reload() and the default state file location. */
  readonly configPath?: string;
  readonly log?: Logger;
  /** Where access lines go; defaults to `log` when that is given, else to stdout. */
  readonly accessLog?: Logger;
  readonly clock?: Clock;
  readonly random?: () => number;
  readonly env?: NodeJS.ProcessEnv;
}

/** Bound addresses, for printing and for tests that listen on port 0. */
export interface GatewayAddresses {
  readonly public: AddressInfo;
  readonly private: AddressInfo | undefined;
  readonly admin: AddressInfo;
}

/** The outcome of a reload. */
export type ReloadResult = { readonly ok: true; readonly version: string } | { readonly ok: false; readonly error: string };

function listen(server: Server, at: HostPort): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * A running Switchyard: listeners, the config store, and the registries whose live state
 * (instances, JWKS caches, metrics) outlives any one config snapshot.
 */
export class Gateway {
  readonly log: Logger;
  readonly accessLog: Logger;
  readonly metrics = new Metrics();
  readonly instances = new InstanceRegistry();
  /** Identity-provider caches, one per process, surviving reloads. */
  readonly jwks: JwksCacheRegistry;
  readonly discovery: OidcDiscovery;
  readonly keyStore: KeyStore;
  readonly store: ConfigStore;
  readonly #opts: GatewayOptions;
  readonly #clock: Clock;
  readonly #servers: { kind: ListenerKind | 'admin'; server: Server }[] = [];
  #verifier: { key: string; verifier: TokenVerifier } | undefined;
  #adminAuth: { snap: Snapshot; auth: AdminAuth } | undefined;
  #draining = false;
  #ready = false;
  #inFlight = 0;
  #idle: (() => void) | undefined;
  #addresses: GatewayAddresses | undefined;

  private constructor(opts: GatewayOptions, keyStore: KeyStore) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    const dest = opts.log ? undefined : logDestination();
    this.log = opts.log ?? createLogger(opts.config.logging.level, dest);
    this.accessLog = opts.accessLog ?? opts.log ?? createAccessLogger(dest ?? logDestination());
    this.keyStore = keyStore;
    this.jwks = new JwksCacheRegistry({ now: this.#clock, logger: this.log });
    this.discovery = new OidcDiscovery({ now: this.#clock, logger: this.log });
    this.store = new ConfigStore(opts.config, this.instances, (cfg) => ({
      instances: this.instances,
      keyOverride: (ep, slot, configured) => this.keyStore.get(ep, slot, configured),
      verifier: this.#verifierFor(cfg),
    }), this.log);
  }

  /** Load state, bind every listener, and start serving. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const stateFile = opts.config.state?.file
      ?? (opts.configPath ? join(dirname(opts.configPath), `.${basename(opts.configPath)}.state.json`) : undefined);
    const keyStore = new KeyStore(stateFile ?? join(process.cwd(), '.switchyard-state', 'state.json'));
    await keyStore.load();
    const gw = new Gateway(opts, keyStore);
    gw.metrics.reloads.inc({ result: 'success' });
    gw.#publishInstances();
    try {
      await gw.#listen();
    } catch (err) {
      // A later listener failed (say the admin port is taken): release what was bound.
      await gw.close();
      throw err;
    }
    gw.#ready = true;
    return gw;
  }

  get addresses(): GatewayAddresses {
    if (!this.#addresses) throw new Error('gateway not listening');
    return this.#addresses;
  }

  get draining(): boolean {
    return this.#draining;
  }

  #verifierFor(cfg: GatewayConfig): TokenVerifier | undefined {
    if (!cfg.entra) return undefined;
    const key = JSON.stringify(cfg.entra);
    if (this.#verifier?.key !== key) {
      this.#verifier = {
        key,
        verifier: createEntraVerifier({
          authority: cfg.entra.authority,
          tenants: cfg.entra.tenants,
          audiences: cfg.entra.audiences,
          clockSkewS: cfg.entra.clock_skew_s,
          now: this.#clock,
          jwks: this.jwks,
          discovery: this.discovery,
          logger: this.log,
        }),
      };
    }
    return this.#verifier.verifier;
  }

  #adminAuthFor(): AdminAuth {
    const snap = this.store.current;
    if (this.#adminAuth?.snap !== snap) {
      const cfg = snap.config;
      this.#adminAuth = { snap, auth: new AdminAuth(cfg.admin.keys, cfg.admin.entra_roles, this.#verifierFor(cfg)) };
    }
    return this.#adminAuth.auth;
  }

  async #listen(): Promise<void> {
    const cfg = this.#opts.config;
    const observer = new RequestObserver(this.metrics, this.accessLog, this.log, cfg.logging.access_log);
    const proxy = new ProxyHandler({
      snapshot: () => this.store.current,
      draining: () => this.#draining,
      observer,
      clock: this.#clock,
      random: this.#opts.random ?? Math.random,
      onEnd: () => {
        if (--this.#inFlight === 0) this.#idle?.();
      },
    });
    const invocation = (kind: ListenerKind): Server => {
      const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
        this.#inFlight++;
        proxy.handle(req, res, kind);
      });
      // Without this listener Node answers 100 Continue before the gateway has looked at
      // the request; with it, the handler invites the upload only once it accepts it.
      server.on('checkContinue', (req, res) => {
        this.#inFlight++;
        proxy.handle(req, res, kind, true);
      });
      return server;
    };
    const admin = createServer(adminHandler({
      snapshot: () => this.store.current,
      ready: () => this.#ready,
      draining: () => this.#draining,
      metrics: this.metrics,
      auth: () => this.#adminAuthFor(),
      log: this.log,
      now: this.#clock,
      regenerateKey: (ep, slot, digest, by) => this.#regenerateKey(ep, slot, digest, by.id),
    }));
    const pub = invocation('public');
    this.#servers.push({ kind: 'public', server: pub });
    const publicAddr = await listen(pub, cfg.server.listen);
    let privateAddr: AddressInfo | undefined;
    if (cfg.server.private_listen) {
      const priv = invocation('private');
      this.#servers.push({ kind: 'private', server: priv });
      privateAddr = await listen(priv, cfg.server.private_listen);
    }
    this.#servers.push({ kind: 'admin', server: admin });
    const adminAddr = await listen(admin, cfg.server.admin_listen);
    this.#addresses = { public: publicAddr, private: privateAddr, admin: adminAddr };
  }

  async #regenerateKey(endpoint: string, slot: KeySlot, digest: Buffer, by: string): Promise<void> {
    const configured = this.store.current.config.endpoints[endpoint]?.keys?.[slot];
    try {
      await this.keyStore.set(endpoint, slot, digest, configured, by);
    } catch (err) {
      // Whole or not at all: a key that could not be stored is not made effective, or a
      // restart would bring the old one back.
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      this.log.error({ file: this.keyStore.file, code }, 'cannot store a regenerated key');
      throw new GatewayError('InternalError', `The new key could not be stored (state file ${this.keyStore.file}: ${code}); the old key stays in force. Set state.file to a writable path.`);
    }
    this.store.refresh();
  }

  /** Apply a validated config (swap the snapshot); listener addresses need a restart. */
  apply(cfg: GatewayConfig): Snapshot {
    const before = this.store.current.config.server;
    const snap = this.store.apply(cfg);
    this.#publishInstances();
    for (const k of ['listen', 'private_listen', 'admin_listen'] as const) {
      if (JSON.stringify(before[k]) !== JSON.stringify(cfg.server[k])) {
        this.log.warn({ field: `server.${k}` }, 'listener addresses change only on restart');
      }
    }
    return snap;
  }

  /**
   * `switchyard_instance_ready` for every instance of the current snapshot (1 = takes
   * traffic). Series of instances no longer configured are dropped.
   */
  #publishInstances(): void {
    const g = this.metrics.instanceReady;
    g.reset();
    const now = this.#clock();
    for (const ep of this.store.current.endpoints.values()) {
      for (const d of ep.deployments.values()) {
        for (const i of d.instances) g.set({ endpoint: ep.name, deployment: d.name, instance: i.origin }, i.takesTraffic(now) ? 1 : 0);
      }
    }
  }

  /**
   * Re-read the config file; an invalid file is refused and the running config stays.
   * Reloads run one at a time (SIGHUP and a file change can arrive together), so the last
   * one started is the one that stays.
   */
  reload(): Promise<ReloadResult> {
    const next = this.#reloads.then(() => this.#reload());
    this.#reloads = next.then(() => undefined, () => undefined);
    return next;
  }
  #reloads: Promise<void> = Promise.resolve();

  async #reload(): Promise<ReloadResult> {
    const file = this.#opts.configPath;
    if (!file) return { ok: false, error: 'no config file to reload' };
    const r = await loadConfigFile(file, this.#opts.env);
    if (!r.ok) {
      const error = formatIssues(r.issues);
      this.metrics.reloads.inc({ result: 'failure' });
      this.log.error({ file, issues: r.issues }, 'config reload refused; the running config stays');
      return { ok: false, error };
    }
    try {
      const snap = this.apply(r.config);
      this.metrics.reloads.inc({ result: 'success' });
      this.log.info({ file, config_version: snap.version }, 'config reloaded');
      return { ok: true, version: snap.version };
    } catch (err) {
      this.metrics.reloads.inc({ result: 'failure' });
      this.log.error({ file, err }, 'config reload failed to compile; the running config stays');
      return { ok: false, error: String(err) };
    }
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
    this.#draining = true;
    const grace = this.store.current.config.server.shutdown_grace_ms;
    this.log.info({ in_flight: this.#inFlight, grace_ms: grace }, 'draining');
    const invocation = this.#servers.filter((s) => s.kind !== 'admin');
    for (const { server } of invocation) {
      server.close();
      server.closeIdleConnections();
    }
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, grace);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.#inFlight > 0) this.log.warn({ in_flight: this.#inFlight }, 'grace period over; closing remaining connections');
    await this.close();
  }

  /** Close listeners and pools at once. */
  async close(): Promise<void> {
    for (const { server } of this.#servers) {
      server.close();
      server.closeAllConnections();
    }
    await this.instances.close();
    this.log.flush?.();
    this.accessLog.flush?.();
  }
}
