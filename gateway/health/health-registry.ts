/** The last active probe of an instance, as the admin view shows it. */
export interface ProbeResult {
  readonly ok: boolean;
  /** When it ended (ms since the epoch). */
  readonly at: number;
  /** The instance's status, when it answered. */
  readonly status?: number | undefined;
  /** Why it failed without a status (`timeout`, `ECONNREFUSED`, …). */
  readonly error?: string | undefined;
}

/**
 * Whether an instance may be sent traffic: readiness (active probes) and passive
 * ejection. One per origin, shared by every snapshot and deployment that names the origin,
 * and referenced from the {@link Instance}, so selection reads two fields without a lookup.
 */
export class InstanceHealth {
  readonly origin: string;
  readonly #registry: HealthRegistry;
  /** Readiness as last decided by probes; true when no deployment probes the instance. */
  ready = true;
  /** A `readiness_probe` applies to the instance. */
  probed = false;
  /** Probes run so far, and consecutive successes and failures (the thresholds count these). */
  probes = 0;
  probeSuccesses = 0;
  probeFailures = 0;
  lastProbe: ProbeResult | undefined;

  /** Passive outlier detection puts an instance aside until this time (ms). */
  ejectedUntil = 0;
  /** Consecutive failed attempts (connect errors, 5xx, resets, timeouts) since the last success. */
  consecutiveFailures = 0;
  /** Ejections in a row: the next one lasts `base_ejection_time_s` × this (capped). */
  timesEjected = 0;
  /** When the multiplier last decayed (or the last ejection ended). */
  lastDecay = 0;

  constructor(origin: string, registry: HealthRegistry) {
    this.origin = origin;
    this.#registry = registry;
  }

  /** Ready and not ejected at `now`: may be sent traffic. */
  takesTraffic(now: number): boolean {
    return this.ready && this.ejectedUntil <= now;
  }

  ejected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  /** Readiness changed (a probe threshold was crossed, a probe was added or removed). */
  setReady(ready: boolean): void {
    if (this.ready === ready) return;
    this.ready = ready;
    this.#registry.changed(this);
  }

  /** Put the instance aside until `until`; it returns by itself then (waiters are woken). */
  eject(until: number, now: number): void {
    this.ejectedUntil = until;
    this.#registry.changed(this);
    // Its return is a change too: ejections are rare, a timer each is fine.
    setTimeout(() => this.#registry.changed(this), Math.max(0, until - now) + 1).unref();
  }
}

/** Told when an instance's readiness or ejection changes. */
export type HealthListener = (h: InstanceHealth) => void;

/**
 * Health by origin, kept across snapshot swaps; an origin no snapshot names is forgotten.
 * Listeners hear every change (requests waiting for a ready instance, the spill log); an
 * ejection's end is a change too, heard when it is due.
 */
export class HealthRegistry {
  readonly #byOrigin = new Map<string, InstanceHealth>();
  readonly #listeners = new Set<HealthListener>();

  get(origin: string): InstanceHealth {
    let h = this.#byOrigin.get(origin);
    if (!h) this.#byOrigin.set(origin, h = new InstanceHealth(origin, this));
    return h;
  }

  /** The entry for `origin`, if one exists (nothing is created). */
  peek(origin: string): InstanceHealth | undefined {
    return this.#byOrigin.get(origin);
  }

  retain(keep: ReadonlySet<string>): void {
    for (const origin of this.#byOrigin.keys()) if (!keep.has(origin)) this.#byOrigin.delete(origin);
  }

  /** Hear every change from now on; returns the way to stop. */
  listen(fn: HealthListener): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  changed(h: InstanceHealth): void {
    for (const fn of this.#listeners) fn(h);
  }
}
