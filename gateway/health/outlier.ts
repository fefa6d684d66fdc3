import type { DeploymentConfig } from '../../config/schema.ts';
import type { InstanceHealth } from './health-registry.ts';

type Settings = NonNullable<DeploymentConfig['outlier_detection']>;

/** The longest an ejection lasts, however often the instance was ejected (Envoy's `max_ejection_time` default). */
export const MAX_EJECTION_MS = 300_000;

/** Told of each ejection (the counter and the log line). */
export type EjectionListener = (instance: InstanceHealth, ms: number, timesEjected: number) => void;

/** What the detector needs of a deployment's instances. */
export interface Ejectable {
  readonly health: InstanceHealth;
}

/**
 * Passive outlier detection for one deployment (SPEC `outlier_detection`; Envoy's
 * consecutive-5xx detector is the anchor). Every attempt's result is recorded on the
 * instance's health: `consecutive_failures` failures in a row (connect errors, resets,
 * timeouts, 5xx answers) eject it for `base_ejection_time_s` × the times it was ejected in a
 * row (at most {@link MAX_EJECTION_MS}), but never more than `max_ejection_percent` of the
 * deployment at once (at least one instance may always be ejected, as in Envoy, unless the
 * percent is 0). An ejected instance returns by itself when its time is up; each base period
 * it then serves without an ejection lowers the multiplier by one.
 *
 * There is no "panic mode": an ejected instance gets no traffic even when every instance is
 * ejected; the split spills to other deployments, or requests wait for a ready instance.
 */
export class OutlierDetector {
  readonly #threshold: number;
  readonly #baseMs: number;
  readonly #maxPercent: number;
  readonly #instances: readonly Ejectable[];
  readonly #onEject: EjectionListener;

  constructor(settings: Settings, instances: readonly Ejectable[], onEject: EjectionListener) {
    this.#threshold = settings.consecutive_failures;
    this.#baseMs = settings.base_ejection_time_s * 1000;
    this.#maxPercent = settings.max_ejection_percent;
    this.#instances = instances;
    this.#onEject = onEject;
  }

  /** The instance answered (any status below 500): its failure streak ends. */
  succeeded(h: InstanceHealth, now: number): void {
    h.consecutiveFailures = 0;
    if (h.timesEjected > 0 && h.ejectedUntil <= now && now - h.lastDecay >= this.#baseMs) {
      h.timesEjected--;
      h.lastDecay = now;
    }
  }

  /** The attempt failed on the instance's side; eject it if the streak reached the threshold. */
  failed(h: InstanceHealth, now: number): void {
    if (h.ejected(now)) return;
    if (++h.consecutiveFailures < this.#threshold) return;
    if (!this.#mayEject(now)) return;
    h.consecutiveFailures = 0;
    h.timesEjected++;
    const ms = Math.min(this.#baseMs * h.timesEjected, Math.max(MAX_EJECTION_MS, this.#baseMs));
    h.lastDecay = now + ms;
    h.eject(now + ms, now);
    this.#onEject(h, ms, h.timesEjected);
  }

  #mayEject(now: number): boolean {
    if (this.#maxPercent === 0) return false;
    const n = this.#instances.length;
    const allowed = Math.max(1, Math.floor((n * this.#maxPercent) / 100));
    let ejected = 0;
    for (const i of this.#instances) if (i.health.ejected(now)) ejected++;
    return ejected < allowed;
  }
}
