/**
 * What the mirror compares: one answer (live or shadow) as captured by a capped tee, and
 * the verdict on a pair. Shared by the capture (mirror.ts), the comparison (compare.ts),
 * the noise model (noise.ts) and the report (report.ts).
 */

/** One answer, as captured up to `mirror_max_body_bytes`. */
export interface CapturedAnswer {
  /** The instance's status; 0 when it never answered (see `failure`). */
  readonly status: number;
  /** `content-type` of the answer, lower-cased, without parameters (`application/json`). */
  readonly contentType: string | undefined;
  /** The whole body, or undefined when it was larger than the cap or did not complete. */
  readonly body: Buffer | undefined;
  /** From sending the request to the end of the answer (ms). */
  readonly latencyMs: number;
  /**
   * The answer's `content-encoding` header, as sent (the capture does not decode): a body in
   * any encoding but `identity` is not compared (`encoded_body`). Absent or empty: identity.
   */
  readonly contentEncoding?: string | undefined;
  /** Why there is no answer: the instance timed out, or failed (refused, reset, 502). */
  readonly failure?: 'timeout' | 'error' | undefined;
}

/** How one mirrored request ended (`switchyard_mirror_requests_total{outcome}`). */
export type MirrorOutcome =
  | 'agree'
  | 'disagree'
  | 'error'
  | 'timeout'
  | 'not_compared'
  | 'skipped_budget'
  | 'skipped_body';

/** One field that differs between two JSON answers. */
export interface FieldDiff {
  /**
   * JSON path such as `$.predictions[0].score` (array indices kept; `$.xs[#]` for a length;
   * unreadable keys tagged, at most 256 characters: see compare.ts, also for normalisation).
   */
  readonly path: string;
  /** The two values, as JSON text, cut to a short length (the report redacts them further). */
  readonly live: string;
  readonly shadow: string;
}

/** The verdict on a live/shadow pair. */
export interface Comparison {
  readonly outcome: 'agree' | 'disagree' | 'error' | 'timeout' | 'not_compared';
  /** For JSON answers that differ: the fields (noisy ones included; the caller filters). */
  readonly diffs: readonly FieldDiff[];
  /**
   * More fields differed than `diffs` could hold (compare.ts: MAX_FIELD_DIFFS), so the set of
   * differing fields is incomplete: noise cancellation then never turns it into an agreement.
   */
  readonly truncated?: boolean | undefined;
  /** Why `not_compared` (over the cap, incomplete stream, live failed…), for the report. */
  readonly reason?: string | undefined;
}
