import type { EndpointConfig } from '../../config/schema.ts';
import { GatewayError } from '../../gateway/errors.ts';
import type { Clock } from '../../gateway/clock.ts';
import {
  CONTINUE, reject,
  type BucketDecision, type Policy, type PolicyContext, type PolicyFactory, type SharedLimits, type Verdict,
} from '../policy.ts';
import { callerKey } from './caller-cells.ts';
import { DEGRADED_HEADER, DEGRADED_VALUE, RATELIMIT, RATELIMIT_POLICY, RateLimitFields, wholeSeconds } from './headers.ts';
import { LocalLimiter } from './local-limiter.ts';

/** A limit as configured, with the burst default filled in. */
export interface Limit {
  readonly rate: number;
  readonly burst: number;
  readonly per: 'endpoint' | 'caller';
}

/**
 * `burst` when the config leaves it out: one second's worth of requests, at least one
 * (`requests_per_second: 0.5` admits one request, then one every two seconds).
 */
export function defaultBurst(ratePerSecond: number): number {
  return Math.max(1, Math.ceil(ratePerSecond));
}

/** The endpoint's limit, or undefined when it has none. */
export function limitOf(ep: EndpointConfig): Limit | undefined {
  const rl = ep.rate_limit;
  if (!rl) return undefined;
  return { rate: rl.requests_per_second, burst: rl.burst ?? defaultBurst(rl.requests_per_second), per: rl.per };
}

/** Longest Retry-After (s) whose refusal verdict is kept for reuse. */
const CACHED_REFUSALS = 600;

/**
 * `rate_limit` (SPEC §2): a token bucket (as GCRA) per endpoint, or per caller with
 * `per: caller` (key slot, token subject, else client IP). Refusals are 429
 * `TooManyRequests` with `Retry-After` = whole seconds until the next token; every response
 * of the endpoint carries `RateLimit-Policy` and `RateLimit` (see headers.ts).
 *
 * In-process by default, divided among the gateway's worker processes. With `state.redis_url`
 * the bucket lives in the shared store (one atomic round trip per decision), so the limit
 * holds across replicas; while the store is unavailable, `state.on_redis_error` decides
 * without it: `local` per-process buckets at the limit ÷ replicas, `open` admits, `closed`
 * answers 503. The local path is synchronous and allocates only the RateLimit value.
 */
export const rateLimitFactory: PolicyFactory = {
  type: 'rate-limit',
  stage: 'endpoint',
  create(scope, deps) {
    const limit = limitOf(scope.endpointConfig);
    if (!limit) return undefined;
    const { rate, burst, per } = limit;
    // Same limit, same key: a reload that keeps it keeps the buckets; a change starts afresh.
    const id = `${scope.endpoint}:${per}:${rate}:${burst}`;
    const now = deps.clock();
    const perCaller = per === 'caller';
    const shared = deps.shared;
    const workers = Math.max(1, deps.workers);
    const local = shared
      // The fallback while the shared store is down; re-divided by the replicas known then.
      ? deps.state.get(`rate-limit:${id}:fallback`, () => new LocalLimiter({ rate, burst, perCaller, divisor: workers, now }))
      : deps.state.get(`rate-limit:${id}:local:${workers}`, () => new LocalLimiter({ rate, burst, perCaller, divisor: workers, now }));
    return new RateLimitPolicy(`${scope.endpoint}.rate-limit`, limit, deps.clock, local, shared, workers, id);
  },
};

/** One endpoint's limit, compiled once per snapshot. */
class RateLimitPolicy implements Policy {
  readonly name: string;
  readonly #clock: Clock;
  readonly #fields: RateLimitFields;
  readonly #local: LocalLimiter;
  readonly #shared: SharedLimits | undefined;
  readonly #workers: number;
  readonly #rate: number;
  readonly #burst: number;
  readonly #perCaller: boolean;
  /** Shared-store key (per endpoint), or its prefix (per caller); the same in every replica. */
  readonly #key: string;
  /** An admission past the last token: ms from "bucket full" to "one more admitted". */
  readonly #lastTokenMs: number;
  readonly #refusals: (Verdict | undefined)[] = new Array<Verdict | undefined>(CACHED_REFUSALS + 1);
  readonly #unavailable = reject(new GatewayError('SharedStateUnavailable'), 'degraded');

  constructor(name: string, limit: Limit, clock: Clock, local: LocalLimiter, shared: SharedLimits | undefined, workers: number, key: string) {
    this.name = name;
    this.#clock = clock;
    this.#fields = new RateLimitFields(limit.per, limit.rate, limit.burst);
    this.#local = local;
    this.#shared = shared;
    this.#workers = workers;
    this.#rate = limit.rate;
    this.#burst = limit.burst;
    this.#perCaller = limit.per === 'caller';
    this.#key = this.#perCaller ? `${key}:` : key;
    this.#lastTokenMs = ((limit.burst - 1) * 1000) / limit.rate;
  }

  evaluate(ctx: PolicyContext): Verdict | Promise<Verdict> {
    const shared = this.#shared;
    if (shared === undefined) return this.#decideLocally(ctx, this.#local);
    if (shared.degraded) return this.#withoutShared(ctx, shared);
    const key = this.#perCaller ? this.#key + callerKey(ctx) : this.#key;
    // One failed or late call is handled like an outage, for this request only.
    return shared.take(key, this.#rate, this.#burst).then(
      (d) => this.#fromShared(ctx, d),
      () => this.#withoutShared(ctx, shared),
    );
  }

  #decideLocally(ctx: PolicyContext, limiter: LocalLimiter): Verdict {
    const g = limiter.gcra;
    const admitted = limiter.take(ctx, this.#clock());
    ctx.addResponseHeader(RATELIMIT_POLICY, this.#fields.policy);
    if (!admitted) return this.#refuse(ctx, wholeSeconds(g.nextMs));
    // Each process holds 1/divisor of the bucket: report the whole limit's estimate.
    ctx.addResponseHeader(RATELIMIT, this.#fields.current(wholeTokens(g.remaining) * limiter.divisor, g.nextMs, g.resetMs));
    return CONTINUE;
  }

  #fromShared(ctx: PolicyContext, d: BucketDecision): Verdict {
    ctx.addResponseHeader(RATELIMIT_POLICY, this.#fields.policy);
    if (!d.allowed) return this.#refuse(ctx, wholeSeconds(d.retryAfterMs));
    const remaining = Math.floor(d.remaining);
    const nextMs = remaining >= 1 ? 0 : d.resetMs - this.#lastTokenMs;
    ctx.addResponseHeader(RATELIMIT, this.#fields.current(remaining, nextMs, d.resetMs));
    return CONTINUE;
  }

  /** The shared store is unavailable (an outage, or this one call failed): `state.on_redis_error`. */
  #withoutShared(ctx: PolicyContext, shared: SharedLimits): Verdict {
    ctx.addResponseHeader(DEGRADED_HEADER, DEGRADED_VALUE);
    switch (shared.onError) {
      case 'open':
        ctx.addResponseHeader(RATELIMIT_POLICY, this.#fields.policy);
        return CONTINUE;
      case 'closed':
        ctx.addResponseHeader(RATELIMIT_POLICY, this.#fields.policy);
        return this.#unavailable;
      default:
        // `replicas` counts every gateway process that beat on the store (workers included);
        // before any beat it is 1, and this machine's workers are the least there are.
        this.#local.divideBy(Math.max(shared.replicas, this.#workers));
        return this.#decideLocally(ctx, this.#local);
    }
  }

  #refuse(ctx: PolicyContext, seconds: number): Verdict {
    ctx.addResponseHeader(RATELIMIT, this.#fields.empty(seconds));
    if (seconds > CACHED_REFUSALS) return refusal(seconds);
    return (this.#refusals[seconds] ??= refusal(seconds));
  }
}

/** Whole tokens in a float count (4.999999999999999 after intervals of 1000/7 ms is 5). */
function wholeTokens(tokens: number): number {
  return Math.floor(tokens + 1e-6);
}

/** 429 with `Retry-After: seconds`. */
function refusal(seconds: number): Verdict {
  return reject(new GatewayError('TooManyRequests', undefined, { 'retry-after': String(seconds) }), 'rate_limit');
}
