import type { Dispatcher } from 'undici';
import type { DeploymentConfig } from '../../config/schema.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import type { Instance } from '../upstream/instance.ts';
import type { InstanceHealth } from './health-registry.ts';

export type ProbeSettings = NonNullable<DeploymentConfig['readiness_probe']>;

/**
 * One instance's readiness probe (SPEC `readiness_probe`, in seconds as Azure ML and
 * Kubernetes have it): `GET path` every `period` after `initial_delay`; an answer in
 * 200-399 within `timeout` is a success. `success_threshold` successes in a row make the
 * instance ready, `failure_threshold` failures in a row unready. Off the request path: its
 * own timer, the instance's own keep-alive pool.
 */
export class Prober {
  readonly settings: ProbeSettings;
  readonly #key: string;
  readonly #pool: Dispatcher;
  readonly health: InstanceHealth;
  readonly #clock: Clock;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Called after each probe (the first round's end is watched through it). */
  onProbed: (() => void) | undefined;

  constructor(instance: Instance, settings: ProbeSettings, clock: Clock, log: Logger) {
    this.settings = settings;
    this.#key = JSON.stringify(settings);
    this.#pool = instance.pool;
    this.health = instance.health;
    this.#clock = clock;
    this.#log = log;
  }

  /** Same settings: the running prober can stay. */
  sameAs(settings: ProbeSettings): boolean {
    return this.#key === JSON.stringify(settings);
  }

  start(): void {
    this.health.probed = true;
    this.#schedule(this.settings.initial_delay * 1000);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#probe(), ms);
    this.#timer.unref();
  }

  async #probe(): Promise<void> {
    const s = this.settings;
    const started = this.#clock();
    const timeoutMs = s.timeout * 1000;
    let status: number | undefined;
    let error: string | undefined;
    try {
      const r = await this.#pool.request({
        method: 'GET',
        path: s.path,
        headers: { 'user-agent': 'switchyard-probe' },
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = r.statusCode;
      await r.body.dump();
    } catch (err) {
      const e = err as { code?: string; name?: string };
      error = e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT' ? 'timeout' : (e.code ?? 'error');
    }
    if (this.#stopped) return;
    const ok = status !== undefined && status >= 200 && status < 400;
    this.record(ok, status, error);
    this.onProbed?.();
    this.#schedule(Math.max(0, s.period * 1000 - (this.#clock() - started)));
  }

  /** Count one probe result and cross a threshold if it is reached (exposed for tests of the rule). */
  record(ok: boolean, status?: number, error?: string): void {
    const h = this.health;
    const s = this.settings;
    h.probes++;
    h.lastProbe = { ok, at: this.#clock(), status, error };
    if (ok) {
      h.probeFailures = 0;
      h.probeSuccesses++;
      if (!h.ready && h.probeSuccesses >= s.success_threshold) {
        h.setReady(true);
        this.#log.info({ instance: h.origin }, 'instance ready');
      }
    } else {
      h.probeSuccesses = 0;
      h.probeFailures++;
      if (h.ready && h.probeFailures >= s.failure_threshold) {
        h.setReady(false);
        this.#log.warn({ instance: h.origin, status, error }, 'instance failed its readiness probe');
      }
    }
  }
}

/** Which probe applies to each origin of a snapshot: the first deployment naming it with one. */
function probeSettings(snap: Snapshot): Map<string, { instance: Instance; settings: ProbeSettings }> {
  const out = new Map<string, { instance: Instance; settings: ProbeSettings }>();
  for (const [ename, ep] of snap.endpoints) {
    const cfg = snap.config.endpoints[ename];
    for (const [dname, d] of ep.deployments) {
      const settings = cfg?.deployments[dname]?.readiness_probe;
      if (!settings) continue;
      for (const i of d.instances) if (!out.has(i.origin)) out.set(i.origin, { instance: i, settings });
    }
  }
  return out;
}

/**
 * Every prober, following the snapshot in force: probes start and stop as instances enter
 * and leave the config (or gain and lose a `readiness_probe`). An instance new to the
 * gateway with a probe starts unready; one already serving keeps its state until its probes
 * say otherwise; one whose probe is removed is ready again (SPEC: without a probe an
 * instance counts as ready).
 */
export class Probers {
  readonly #running = new Map<string, Prober>();
  readonly #clock: Clock;
  readonly #log: Logger;
  /** Probers of the first snapshot, until each has run once (`/readyz`). */
  #firstRound: Prober[] | undefined;

  constructor(clock: Clock, log: Logger) {
    this.#clock = clock;
    this.#log = log;
  }

  sync(next: Snapshot, prev: Snapshot | undefined): void {
    const wanted = probeSettings(next);
    for (const [origin, p] of this.#running) {
      const w = wanted.get(origin);
      if (w && p.sameAs(w.settings)) continue;
      p.stop();
      this.#running.delete(origin);
      if (!w) {
        const h = this.#healthOf(next, origin);
        if (h) {
          h.probed = false;
          h.setReady(true);
        }
      }
    }
    for (const [origin, { instance, settings }] of wanted) {
      if (this.#running.has(origin)) continue;
      // New to the gateway: unready until it passes. Already serving: keeps its state.
      if (!prev?.origins.has(origin) && instance.health.probes === 0) instance.health.setReady(false);
      const p = new Prober(instance, settings, this.#clock, this.#log);
      p.onProbed = () => this.#checkFirstRound();
      this.#running.set(origin, p);
      p.start();
    }
    this.#firstRound ??= [...this.#running.values()];
  }

  #firstRoundWaiters: (() => void)[] = [];

  /** Resolves once the first probe round has run (at once when nothing is probed). */
  firstRound(): Promise<void> {
    if (this.firstRoundDone) return Promise.resolve();
    return new Promise((resolve) => this.#firstRoundWaiters.push(resolve));
  }

  #checkFirstRound(): void {
    if (this.#firstRoundWaiters.length === 0 || !this.firstRoundDone) return;
    for (const w of this.#firstRoundWaiters.splice(0)) w();
  }

  /** Every instance probed at start has been probed once (or stopped being probed), or none is. */
  get firstRoundDone(): boolean {
    const first = this.#firstRound;
    if (!first) return false;
    // An instance still in its initial_delay counts as probed (it is unready until then): a
    // deployment of a model that takes minutes to load must not hold the others back.
    if (first.length > 0 && !first.every((p) => p.stopped || p.health.probes > 0 || p.settings.initial_delay > 0)) return false;
    this.#firstRound = [];
    return true;
  }

  #healthOf(snap: Snapshot, origin: string): InstanceHealth | undefined {
    for (const ep of snap.endpoints.values()) {
      for (const d of ep.deployments.values()) for (const i of d.instances) if (i.origin === origin) return i.health;
    }
    return undefined;
  }

  close(): void {
    for (const p of this.#running.values()) p.stop();
    this.#running.clear();
    for (const w of this.#firstRoundWaiters.splice(0)) w();
  }
}
