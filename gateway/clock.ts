/**
 * Time and randomness are injected everywhere they matter (token buckets, JWKS cache,
 * health, breakers) so tests advance a fake clock instead of sleeping.
 */

/** Milliseconds since the epoch, like `Date.now()`. */
export type Clock = () => number;

/** The real wall clock. */
export const systemClock: Clock = Date.now;

/** A clock tests move by hand. */
export interface ManualClock {
  readonly now: Clock;
  advance(ms: number): void;
  set(ms: number): void;
}

/** Create a clock that only moves when told to. */
export function manualClock(start = Date.UTC(2026, 10, 21, 12, 0, 0)): ManualClock {
  let t = start;
  return {
    now: () => t,
    advance(ms) { t += ms; },
    set(ms) { t = ms; },
  };
}
