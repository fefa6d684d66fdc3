import type { PolicyContext } from '../policy.ts';
import { CallerPartitions, MAX_CALLERS } from './caller-cells.ts';
import { Gcra, type Cell } from './gcra.ts';

/**
 * An in-process limit: the configured rate and burst divided by `divisor` (the gateway
 * processes splitting the limit among them), over one bucket for the endpoint or one per
 * caller. It lives in the state registry, so a reload that keeps the limit keeps its buckets.
 */
export class LocalLimiter {
  /** The algorithm, with the last decision's figures (read them right after {@link take}). */
  readonly gcra: Gcra;
  readonly #rate: number;
  readonly #burst: number;
  #divisor = 0;
  /** Bucket times count from here (ms on the injected clock): small numbers keep floats exact. */
  readonly #origin: number;
  readonly #cell: Cell | undefined;
  readonly #callers: CallerPartitions | undefined;

  constructor(opts: { rate: number; burst: number; perCaller: boolean; divisor: number; now: number; maxCallers?: number }) {
    this.#rate = opts.rate;
    this.#burst = opts.burst;
    this.gcra = new Gcra(opts.rate, opts.burst);
    this.divideBy(opts.divisor);
    this.#origin = opts.now;
    if (opts.perCaller) this.#callers = new CallerPartitions(opts.maxCallers ?? MAX_CALLERS);
    else this.#cell = { tat: 0 };
  }

  /** How many processes share the limit now. */
  get divisor(): number {
    return this.#divisor;
  }

  /** Share the limit among `divisor` processes (a no-op when unchanged; buckets keep their state). */
  divideBy(divisor: number): void {
    const d = divisor >= 1 ? divisor : 1;
    if (d === this.#divisor) return;
    this.#divisor = d;
    this.gcra.configure(this.#rate / d, this.#burst / d);
  }

  /** The per-caller buckets (tests and the admin view), or undefined for a per-endpoint limit. */
  get callers(): CallerPartitions | undefined {
    return this.#callers;
  }

  /** Take one token for the request `ctx` at `now`: true when admitted. */
  take(ctx: PolicyContext, now: number): boolean {
    const t = now - this.#origin;
    return this.gcra.take(this.#cell ?? this.#callers!.cell(ctx, t), t);
  }
}
