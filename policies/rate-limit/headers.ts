/**
 * The IETF RateLimit header fields, draft-ietf-httpapi-ratelimit-headers-11 (23 May 2026):
 * two Structured Field lists whose items are a policy name (an sf-string) with parameters.
 *
 *   RateLimit-Policy: "endpoint";q=1000;w=2     the policy: q requests per w seconds
 *   RateLimit: "endpoint";r=998;t=1             now: r requests left, t seconds of window
 *
 * How a token bucket (rate R/s, burst B) maps onto them:
 * - q = B and w = ceil(B / R): a full bucket is q requests, and an empty one takes w seconds
 *   to fill again, so q/w is the sustained rate (exactly, when B/R is whole; a little under
 *   it otherwise: the draft's w is whole seconds).
 * - r = whole tokens left after this request.
 * - t = seconds until the bucket is full again (q available once more); when r = 0, seconds
 *   until the next request would be admitted, which is exactly `Retry-After` on a 429 (the
 *   draft: Retry-After SHOULD NOT point earlier than the end of the effective window).
 * The policy name says what is counted: `"endpoint"` (one bucket for the endpoint) or
 * `"caller"` (one per key slot, token subject or client IP). No `pk` partition key: the
 * caller knows who it is, and keys should not carry identities back (draft §6.1).
 */
export const RATELIMIT_POLICY = 'RateLimit-Policy';
export const RATELIMIT = 'RateLimit';
/** Set on a limited endpoint's responses while the shared store is unavailable. */
export const DEGRADED_HEADER = 'x-switchyard-degraded';
export const DEGRADED_VALUE = 'shared-state';

/** Largest Retry-After (s) whose `RateLimit` value is cached; longer waits build theirs. */
const CACHED_SECONDS = 600;
/** Most `RateLimit` values (r, t) cached per limit: q × w of them at most, built on first use. */
const CACHED_VALUES = 4096;

/** Whole seconds, at least 1, from a wait in ms (the draft's delay-seconds, and Retry-After's). */
export function wholeSeconds(ms: number): number {
  const s = Math.ceil(ms / 1000);
  return s > 1 ? s : 1;
}

/** The header values of one limit, precomputed where they do not change per request. */
export class RateLimitFields {
  /** `RateLimit-Policy` value. */
  readonly policy: string;
  /** The policy's quota (the bucket size the user configured). */
  readonly quota: number;
  readonly #window: number;
  readonly #prefix: string;
  readonly #zero: (string | undefined)[] = new Array<string | undefined>(CACHED_SECONDS + 1);
  /** Values by `(r - 1) × w + (t - 1)`, when q × w is small enough to keep them all. */
  readonly #values: (string | undefined)[] | undefined;

  constructor(name: 'endpoint' | 'caller', ratePerSecond: number, burst: number) {
    this.quota = burst;
    this.#window = Math.max(1, Math.ceil(burst / ratePerSecond));
    this.policy = `"${name}";q=${burst};w=${this.#window}`;
    this.#prefix = `"${name}";r=`;
    this.#values = burst * this.#window <= CACHED_VALUES ? new Array<string | undefined>(burst * this.#window) : undefined;
  }

  /**
   * The `RateLimit` value after a decision: `remaining` whole tokens (capped at the quota),
   * `nextMs` until a request would be admitted, `resetMs` until the bucket is full.
   */
  current(remaining: number, nextMs: number, resetMs: number): string {
    const r = remaining < this.quota ? remaining : this.quota;
    if (r < 1) return this.empty(wholeSeconds(nextMs));
    const t = wholeSeconds(resetMs);
    // The values repeat (the same few r, t pairs at a steady rate): build each once.
    if (!this.#values || t > this.#window) return `${this.#prefix}${r};t=${t}`;
    return (this.#values[(r - 1) * this.#window + t - 1] ??= `${this.#prefix}${r};t=${t}`);
  }

  /** `RateLimit` for an empty bucket that fills its next token in `seconds` (a 429's value). */
  empty(seconds: number): string {
    if (seconds > CACHED_SECONDS) return `${this.#prefix}0;t=${seconds}`;
    return (this.#zero[seconds] ??= `${this.#prefix}0;t=${seconds}`);
  }
}
