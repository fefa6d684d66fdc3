import { performance } from 'node:perf_hooks';

/** Something with a deadline: called once when it passes, unless removed first. */
export interface Expiring {
  /** Monotonic ms (the timers' own `now`); move it forward to extend. */
  deadline: number;
  expired(now: number): void;
}

/**
 * Request and upload deadlines on one shared ticker instead of a Node timer each.
 * `request_timeout_ms` and `client_body_timeout_ms` are re-armed on every chunk; with a
 * Node timer per exchange that is a timer-list insert, a refresh per chunk and an unenroll
 * per request on the hot path, with this a field write.
 *
 * Resolution: deadlines are checked every {@link resolutionMs} (10 ms) against a clock read
 * at each check, and are set from the same clock, which may lag real time by up to one
 * tick. A deadline therefore fires within ±10 ms of its nominal time; README says so.
 * The ticker runs only while something is waiting and never keeps the process alive.
 */
export class CoarseTimers {
  readonly resolutionMs: number;
  readonly #clock: () => number;
  readonly #waiting = new Set<Expiring>();
  #ticker: NodeJS.Timeout | undefined;
  #now: number;

  constructor(resolutionMs = 10, clock: () => number = performance.now.bind(performance)) {
    this.resolutionMs = resolutionMs;
    this.#clock = clock;
    this.#now = clock();
  }

  /** The clock as of the last tick (or now, when nothing is waiting): set deadlines from it. */
  get now(): number {
    return this.#ticker ? this.#now : (this.#now = this.#clock());
  }

  /** Start watching `e` (its `deadline` must be set). */
  add(e: Expiring): void {
    this.#waiting.add(e);
    if (!this.#ticker) {
      this.#now = this.#clock();
      this.#ticker = setInterval(() => this.tick(), this.resolutionMs);
      this.#ticker.unref();
    }
  }

  remove(e: Expiring): void {
    this.#waiting.delete(e);
  }

  /** Fire what is due (the ticker calls this; tests call it with an injected clock). */
  tick(): void {
    const now = (this.#now = this.#clock());
    for (const e of this.#waiting) {
      if (e.deadline > now) continue;
      this.#waiting.delete(e);
      e.expired(now);
    }
    if (this.#waiting.size === 0 && this.#ticker) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  get size(): number {
    return this.#waiting.size;
  }
}

/** The process's shared deadlines (request and upload timeouts). */
export const deadlines = new CoarseTimers();
