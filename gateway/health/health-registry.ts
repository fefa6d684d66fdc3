/**
 * Whether an instance may be sent traffic: readiness (active probes) and passive
 * ejection. One per origin, shared by every snapshot and deployment that names the origin,
 * and referenced from the {@link Instance}, so selection reads it without a lookup. For
 * now every instance is ready; probes and outlier detection fill this in.
 */
export class InstanceHealth {
  readonly origin: string;
  /** Readiness as last decided by probes; true when the deployment has no probe. */
  ready = true;
  /** Passive outlier detection puts an instance aside until this time (ms). */
  ejectedUntil = 0;

  constructor(origin: string) {
    this.origin = origin;
  }

  /** Ready and not ejected at `now`: may be sent traffic. */
  takesTraffic(now: number): boolean {
    return this.ready && this.ejectedUntil <= now;
  }

  ejected(now: number): boolean {
    return this.ejectedUntil > now;
  }
}

/** Health by origin, kept across snapshot swaps; an origin no snapshot names is forgotten. */
export class HealthRegistry {
  readonly #byOrigin = new Map<string, InstanceHealth>();

  get(origin: string): InstanceHealth {
    let h = this.#byOrigin.get(origin);
    if (!h) this.#byOrigin.set(origin, h = new InstanceHealth(origin));
    return h;
  }

  retain(keep: ReadonlySet<string>): void {
    for (const origin of this.#byOrigin.keys()) if (!keep.has(origin)) this.#byOrigin.delete(origin);
  }
}
