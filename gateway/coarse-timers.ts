import { performance } from 'node:perf_hooks';

import type { Deadlines, Expiring } from '../policies/policy.ts';

export type { Expiring } from '../policies/policy.ts';

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
export class CoarseTimers implements Deadlines {
  readonly resolutionMs: number;
  readonly #clock: () => number;
  /** A doubly linked list through the items themselves. */
  #head: Expiring | undefined;
  #size = 0;
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

  /** Start watching `e` (its `deadline` must be set). Adding one already watched does nothing. */
  add(e: Expiring): void {
    if (e.timerPrev !== undefined || this.#head === e) return;
    e.timerNext = this.#head;
    if (this.#head) this.#head.timerPrev = e;
    this.#head = e;
    this.#size++;
    if (!this.#ticker) {
      this.#now = this.#clock();
      this.#ticker = setInterval(() => this.tick(), this.resolutionMs);
      this.#ticker.unref();
    }
  }

  remove(e: Expiring): void {
    const prev = e.timerPrev;
    const next = e.timerNext;
    if (prev === undefined && this.#head !== e) return;
    if (prev) prev.timerNext = next;
    else this.#head = next;
    if (next) next.timerPrev = prev;
    e.timerPrev = undefined;
    e.timerNext = undefined;
    this.#size--;
  }

  /** Fire what is due (the ticker calls this; tests call it with an injected clock). */
  tick(): void {
    const now = (this.#now = this.#clock());
    let e = this.#head;
    while (e) {
      const next = e.timerNext;
      if (e.deadline <= now) {
        this.remove(e);
        e.expired(now);
      }
      e = next;
    }
    if (this.#size === 0 && this.#ticker) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
    }
  }

  get size(): number {
    return this.#size;
  }
}

/** The process's shared deadlines (request and upload timeouts). */
export const deadlines = new CoarseTimers();
