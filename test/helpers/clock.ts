/** A clock tests move by hand (time is injected everywhere it matters; tests never sleep). */
export interface ManualClock {
  readonly now: () => number;
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
