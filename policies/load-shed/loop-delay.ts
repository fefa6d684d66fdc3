import { monitorEventLoopDelay, type ELDHistogram } from 'node:perf_hooks';

/** The process's recent event-loop delay, as load shedding reads it. */
export interface LoopDelay {
  /** Milliseconds: the mean event-loop delay over the last sampling window. */
  readonly delayMs: number;
  dispose?(): void;
}

/**
 * Event-loop delay from `perf_hooks.monitorEventLoopDelay`, summarised every
 * `windowMs` (the mean over that window) so that reading it on the request path is one field
 * read. One per process (kept in the state registry); its timer never keeps the process alive.
 *
 * Why the mean of a short window: a saturated loop delays every timer tick, so the mean
 * tracks the queueing every request sees, while one GC pause among twenty ticks moves it
 * little (a percentile of twenty samples is their maximum: one pause would shed traffic).
 */
export class EventLoopDelay implements LoopDelay {
  delayMs = 0;
  readonly #h: ELDHistogram;
  readonly #timer: NodeJS.Timeout;
  readonly #resolutionMs: number;

  constructor(windowMs = 200, resolutionMs = 10) {
    this.#resolutionMs = resolutionMs;
    this.#h = monitorEventLoopDelay({ resolution: resolutionMs });
    this.#h.enable();
    this.#timer = setInterval(() => this.sample(), windowMs);
    this.#timer.unref();
  }

  /** Close the current window (the timer calls this). */
  sample(): void {
    // The histogram holds nanoseconds between its ticks, the resolution included (an idle
    // loop reads about the resolution); an empty window reads as 0.
    this.delayMs = this.#h.count > 0 ? Math.max(0, this.#h.mean / 1e6 - this.#resolutionMs) : 0;
    this.#h.reset();
  }

  dispose(): void {
    clearInterval(this.#timer);
    this.#h.disable();
  }
}

/** Where the monitor is kept in the state registry (tests put their own reading there first). */
export const LOOP_DELAY_KEY = 'load-shed:event-loop-delay';
