import { compareAnswers } from './compare.ts';
import { BODY_PATH, LENGTH_SEGMENT, isPseudoPath, normalisePath } from './paths.ts';
import type { CapturedAnswer, Comparison, FieldDiff } from './types.ts';

/**
 * The live model's own noise (Diffy's idea, issue 11): for a sample of mirrored requests a
 * second copy goes to the live deployment, and the fields on which the two live answers
 * differ are learned. A shadow that differs from live only on such fields is not counted
 * as disagreeing.
 *
 * The rule, kept explainable: a field (normalised path, `$.items[*].id`, `$.items[#]` for the
 * array's length) is noisy when live differed from itself on exactly that field in at least
 * `minRate` (default 1%) of the usable baseline pairs, and at least once. Only the field
 * itself counts, never a field containing it: a difference at `$.meta` (absent on one side,
 * or another type) says nothing about `$.meta.ts` when both sides have it, and would otherwise
 * cancel every difference beneath it; a field that really varies in live is learned itself.
 * Likewise an array's length (`$.items[#]`) is a field of its own and covers no element.
 * Never noisy: the status and content-type pseudo-paths, and `$`, the whole body.
 *
 * A pair is usable when both live answers were captured whole and compared (same status class,
 * same kind of body, not content-encoded) and differ, if at all, field by field. Skipped
 * (`skippedPairs`): one live answer failed, or the two differ in status class or kind, or a body
 * was not compared: a live deployment failing now and then is not noise to cancel. Not learned
 * either (`liveNondeterministic`): the two live answers differ over the whole body (`$`: bytes of
 * a non-JSON body, invalid JSON, another top-level value), which teaches nothing field-level.
 *
 * Simpler than Diffy, which reports a field only when candidate diffs exceed noise diffs by
 * 20% relative and 0.03% absolute: here a single per-field threshold decides each request,
 * and the report shows both the shadow's and live's own rate for each field.
 *
 * Bounded: at most `maxPaths` fields are tracked (default 1000); a field seen after that is
 * not learned (so never noisy: differences there still count, the conservative side).
 */
export interface NoiseOptions {
  /** Share of usable pairs a field must differ in to be noisy (default 0.01). */
  readonly minRate?: number;
  /** Fields tracked at most (default 1000). */
  readonly maxPaths?: number;
}

export interface NoisyField {
  /** Normalised path. */
  readonly path: string;
  /** Usable pairs in which live differed from itself on this field. */
  readonly count: number;
  /** count / usable pairs. */
  readonly rate: number;
}

export const DEFAULT_NOISE_MIN_RATE = 0.01;
export const DEFAULT_MAX_PATHS = 1000;

export class NoiseModel {
  readonly #minRate: number;
  readonly #maxPaths: number;
  readonly #counts = new Map<string, number>();
  #pairs = 0;
  #skipped = 0;
  #wholeBody = 0;
  #untracked = 0;

  constructor(opts: NoiseOptions = {}) {
    this.#minRate = opts.minRate ?? DEFAULT_NOISE_MIN_RATE;
    this.#maxPaths = opts.maxPaths ?? DEFAULT_MAX_PATHS;
  }

  /**
   * Learn from two live answers to the same request (`tol`: the endpoint's number tolerance,
   * so numbers within it are not noise). Returns whether the pair was usable.
   */
  learn(liveA: CapturedAnswer, liveB: CapturedAnswer, tol: number): boolean {
    const c = compareAnswers(liveA, liveB, { numberTolerance: tol });
    if (c.outcome !== 'agree' && c.outcome !== 'disagree') return this.#skip();
    if (c.diffs.some((d) => isPseudoPath(d.path))) return this.#skip();
    if (c.diffs.some((d) => d.path === BODY_PATH)) {
      this.#wholeBody++;
      return false;
    }
    this.#pairs++;
    // Arrays (or event streams) whose lengths differ: the elements no longer line up, so their
    // differences are the length's (learned at `[#]`), not noise in the elements. Learning them
    // would mark every element (`[*]`) noisy, and a shadow with wholly wrong elements agree.
    const misaligned: string[] = [];
    for (const d of c.diffs) if (d.path.endsWith(LENGTH_SEGMENT)) misaligned.push(d.path.slice(0, -LENGTH_SEGMENT.length) + '[');
    const fields = new Set<string>();
    for (const d of c.diffs) {
      if (!d.path.endsWith(LENGTH_SEGMENT) && misaligned.some((base) => d.path.startsWith(base))) continue;
      fields.add(normalisePath(d.path));
    }
    for (const f of fields) {
      const n = this.#counts.get(f);
      if (n !== undefined) this.#counts.set(f, n + 1);
      else if (this.#counts.size < this.#maxPaths) this.#counts.set(f, 1);
      else this.#untracked++;
    }
    return true;
  }

  #skip(): false {
    this.#skipped++;
    return false;
  }

  #liveBusy = 0;

  /** A second live copy was not sent: the live deployment had no free slot. */
  liveWasBusy(): void {
    this.#liveBusy++;
  }

  /** Second live copies not sent because live had no free slot (a one-slot model never gets one while serving). */
  get liveBusy(): number {
    return this.#liveBusy;
  }

  /** Usable baseline pairs learned from. */
  get pairs(): number {
    return this.#pairs;
  }

  /** Baseline pairs not usable (a live answer failed, or the two differ in status class or kind). */
  get skippedPairs(): number {
    return this.#skipped;
  }

  /** Baseline pairs whose two live answers differed over the whole body (`$`): not learned. */
  get liveNondeterministic(): number {
    return this.#wholeBody;
  }

  /** Field differences not learned because `maxPaths` fields were already tracked. */
  get untracked(): number {
    return this.#untracked;
  }

  /** Live's own difference rate on exactly this field (normalised), 0 when never seen. */
  rate(path: string): number {
    if (this.#pairs === 0) return 0;
    return (this.#counts.get(normalisePath(path)) ?? 0) / this.#pairs;
  }

  #noisyItself(field: string): boolean {
    const n = this.#counts.get(field);
    return n !== undefined && n > 0 && n / this.#pairs >= this.#minRate;
  }

  /** Whether a difference at `path` (concrete or normalised) is live's own noise (that field itself; see above). */
  isNoisy(path: string): boolean {
    if (this.#pairs === 0 || path === BODY_PATH || isPseudoPath(path)) return false;
    return this.#noisyItself(normalisePath(path));
  }

  /** The noisy fields, most often differing first (ties by path). */
  noisyFields(): NoisyField[] {
    const out: NoisyField[] = [];
    for (const [path, count] of this.#counts) {
      if (this.#noisyItself(path)) out.push({ path, count, rate: count / this.#pairs });
    }
    return out.sort((x, y) => y.count - x.count || (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  }
}

/** A comparison after noise cancellation. */
export interface Verdict {
  /** `disagree` becomes `agree` when every differing field is noisy (and the list is complete). */
  readonly outcome: Comparison['outcome'];
  /** True when a disagreement was turned into an agreement by the noise model. */
  readonly noiseCancelled: boolean;
  /** Differences on fields that are not noisy. */
  readonly real: readonly FieldDiff[];
  /** Differences on noisy fields. */
  readonly noisy: readonly FieldDiff[];
}

/**
 * Apply the noise model to a comparison: a disagreement whose differing fields are all noisy
 * counts as an agreement. A truncated comparison (more differing fields than recorded) never
 * does, since an unrecorded field may be a real difference.
 */
export function cancelNoise(c: Comparison, noise: NoiseModel | undefined): Verdict {
  if (c.outcome !== 'disagree' || noise === undefined || noise.pairs === 0) {
    return { outcome: c.outcome, noiseCancelled: false, real: c.diffs, noisy: [] };
  }
  const real: FieldDiff[] = [];
  const noisy: FieldDiff[] = [];
  for (const d of c.diffs) (noise.isNoisy(d.path) ? noisy : real).push(d);
  const cancelled = real.length === 0 && noisy.length > 0 && c.truncated !== true;
  return { outcome: cancelled ? 'agree' : 'disagree', noiseCancelled: cancelled, real, noisy };
}
