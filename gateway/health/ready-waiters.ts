import type { Deadlines, Expiring } from '../../policies/policy.ts';
import type { HealthRegistry } from './health-registry.ts';

/** A request waiting for an instance to become ready. */
class Waiter implements Expiring {
  deadline: number;
  timerPrev: Expiring | undefined = undefined;
  timerNext: Expiring | undefined = undefined;
  readonly #owner: ReadyWaiters;
  readonly endpoint: string;
  readonly done: (timedOut: boolean) => void;

  constructor(owner: ReadyWaiters, endpoint: string, deadline: number, done: (timedOut: boolean) => void) {
    this.#owner = owner;
    this.endpoint = endpoint;
    this.deadline = deadline;
    this.done = done;
  }

  expired(): void {
    this.#owner.remove(this);
    this.done(true);
  }
}

/** How to stop waiting (the client went away). */
export type CancelWait = () => void;

/**
 * Requests that found no ready instance anywhere they could go (a swap or a cold start is
 * often seconds away) wait here for up to `max_queue_wait_ms`: every readiness change wakes
 * them all to choose again; the deadline answers 503. Nothing here runs while all is well.
 */
export class ReadyWaiters {
  readonly #waiting = new Set<Waiter>();
  /** Waiting requests by endpoint (bounded by the caller, reported as a gauge). */
  readonly byEndpoint = new Map<string, number>();
  readonly #timers: Deadlines;

  constructor(health: HealthRegistry, timers: Deadlines) {
    this.#timers = timers;
    health.listen(() => this.#wakeAll());
  }

  /** Monotonic ms the waits are measured in. */
  get now(): number {
    return this.#timers.now;
  }

  /** Requests of `endpoint` waiting now. */
  waiting(endpoint: string): number {
    return this.byEndpoint.get(endpoint) ?? 0;
  }

  /** Call `done(false)` at the next readiness change, or `done(true)` once `ms` passed. */
  wait(endpoint: string, ms: number, done: (timedOut: boolean) => void): CancelWait {
    const w = new Waiter(this, endpoint, this.#timers.now + ms, done);
    this.#waiting.add(w);
    this.#timers.add(w);
    this.byEndpoint.set(endpoint, this.waiting(endpoint) + 1);
    return () => this.remove(w);
  }

  remove(w: Waiter): void {
    if (!this.#waiting.delete(w)) return;
    this.#timers.remove(w);
    const n = this.waiting(w.endpoint) - 1;
    if (n > 0) this.byEndpoint.set(w.endpoint, n);
    else this.byEndpoint.delete(w.endpoint);
  }

  get size(): number {
    return this.#waiting.size;
  }

  #wakeAll(): void {
    if (this.#waiting.size === 0) return;
    const all = [...this.#waiting];
    for (const w of all) {
      this.remove(w);
      w.done(false);
    }
  }
}
