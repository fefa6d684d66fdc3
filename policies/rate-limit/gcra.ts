/**
 * A token bucket as GCRA (the generic cell rate algorithm, ITU-T I.371): the same admissions
 * as a bucket of `burst` tokens refilled at `rate` per second, kept as ONE number per bucket,
 * the theoretical arrival time (TAT). The bucket is full when `tat <= now`; each request
 * pushes `tat` one emission interval (1000 / rate ms) further; a request is refused when
 * that would put `tat` more than `burst` intervals ahead of now. The shared store (Redis)
 * runs the same algorithm, so local and global decisions read alike.
 */

/** One bucket's state. Mutated in place: taking a token allocates nothing. */
export interface Cell {
  /** Theoretical arrival time (ms, on the caller's time line); the bucket is full when `tat <= now`. */
  tat: number;
}

/**
 * Float slack (ms, relative to the magnitudes involved), so that a token due at exactly
 * `now` counts as arrived although sums of fractional intervals (1000/7 ms) are off in
 * their last bits: far below a microsecond, far above the rounding.
 */
const RELATIVE_SLACK = 1e-13;
const MIN_SLACK_MS = 1e-9;

/**
 * The algorithm and its parameters, plus the result of the last {@link take} in fields
 * (read right after the call; the event loop is single-threaded), so a decision returns a
 * boolean and allocates nothing.
 */
export class Gcra {
  /** Milliseconds per token. */
  interval = 0;
  /** Tokens the bucket holds when full (≥ 1; may be fractional once divided among workers). */
  burst = 1;
  #limit = 0;

  /** Tokens left after the last take (fractional; 0 when refused). */
  remaining = 0;
  /** Until one more request would be admitted (ms; 0 when one would be now). */
  nextMs = 0;
  /** Until the bucket is full again (ms). */
  resetMs = 0;

  constructor(ratePerSecond: number, burst: number) {
    this.configure(ratePerSecond, burst);
  }

  /** Change the rate and size (a degraded fallback re-divides when the replica count changes); `tat`s stay. */
  configure(ratePerSecond: number, burst: number): void {
    this.interval = 1000 / ratePerSecond;
    this.burst = Math.max(1, burst);
    this.#limit = this.burst * this.interval;
  }

  /**
   * Take one token from `cell` at `now`: true when admitted (the cell moves on), false when
   * refused (unchanged). Keep `now` small (time since the buckets were made, not since
   * 1970): an epoch in ms leaves a double about 0.2 µs of precision, coarse next to the
   * interval of a high rate.
   */
  take(cell: Cell, now: number): boolean {
    const base = cell.tat > now ? cell.tat : now;
    const debt = base + this.interval - now;
    const slack = MIN_SLACK_MS + ((base > 0 ? base : -base) + this.#limit) * RELATIVE_SLACK;
    if (debt > this.#limit + slack) {
      this.remaining = 0;
      this.nextMs = debt - this.#limit;
      this.resetMs = base - now;
      return false;
    }
    cell.tat = base + this.interval;
    this.remaining = debt < this.#limit ? (this.#limit - debt) / this.interval : 0;
    // One more admission needs a whole interval of room.
    const next = debt + this.interval - this.#limit;
    this.nextMs = next > slack ? next : 0;
    this.resetMs = debt;
    return true;
  }
}
