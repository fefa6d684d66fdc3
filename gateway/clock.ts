/**
 * Time and randomness are injected everywhere they matter (token buckets, JWKS cache,
 * health, breakers) so tests advance a fake clock instead of sleeping.
 */

/** Milliseconds since the epoch, like `Date.now()`. */
export type Clock = () => number;

/** The real wall clock. */
export const systemClock: Clock = Date.now;
