/**
 * Smooth weighted round-robin (the NGINX upstream algorithm): each pick adds every weight
 * to its running score and takes the highest, which then pays back the total. Unlike a
 * random draw, the proportions are exact over every window of `sum(weights)` picks, so a
 * 90/10 split sends exactly 10 of every 100 requests to green, not 10 on average.
 */
export class SmoothWeightedSplit {
  readonly #names: readonly string[];
  readonly #weights: Int32Array;
  readonly #current: Int32Array;
  readonly #total: number;

  constructor(weights: Readonly<Record<string, number>>) {
    const entries = Object.entries(weights).filter(([, w]) => w > 0);
    this.#names = entries.map(([n]) => n);
    this.#weights = Int32Array.from(entries.map(([, w]) => w));
    this.#current = new Int32Array(entries.length);
    this.#total = entries.reduce((s, [, w]) => s + w, 0);
  }

  /** True when no deployment has positive traffic. */
  get empty(): boolean {
    return this.#total === 0;
  }

  /**
   * The next deployment among those `usable` accepts (all, without it), or undefined when
   * none has positive weight. Only usable deployments take part in a draw (their weights
   * add up, the winner pays back their total), so an unusable one's share goes to the others
   * in proportion to their weights, and it resumes where it was when it is usable again.
   */
  next(usable?: (name: string) => boolean): string | undefined {
    if (usable) return this.#nextAmong(usable);
    const w = this.#weights;
    const cur = this.#current;
    let best = -1;
    for (let i = 0; i < w.length; i++) {
      cur[i]! += w[i]!;
      if (best < 0 || cur[i]! > cur[best]!) best = i;
    }
    if (best < 0) return undefined;
    cur[best]! -= this.#total;
    return this.#names[best];
  }

  #nextAmong(usable: (name: string) => boolean): string | undefined {
    const w = this.#weights;
    const cur = this.#current;
    const names = this.#names;
    let best = -1;
    let total = 0;
    for (let i = 0; i < w.length; i++) {
      if (!usable(names[i]!)) continue;
      cur[i]! += w[i]!;
      total += w[i]!;
      if (best < 0 || cur[i]! > cur[best]!) best = i;
    }
    if (best < 0) return undefined;
    cur[best]! -= total;
    return names[best];
  }
}
