import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { GatewayConfig } from '../../config/schema.ts';
import type { BucketDecision, SharedLimits } from '../../policies/policy.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { reasonOf } from './redis-errors.ts';
import { GCRA_TAKE, HEARTBEAT } from './redis-scripts.ts';

/**
 * The one owner of the shared-state connection (Redis, `state.redis_url`): limits and, later,
 * live config use it. Undefined without `state.redis_url`: state is in-process.
 */
export interface SharedState extends SharedLimits {
  /** `state.on_redis_error`, applied live on a reload. */
  onError: SharedLimits['onError'];
  /**
   * Settles once the store is first known usable or known unavailable (connected, or the
   * first connection attempt failed, within about `connectTimeoutMs`). Never rejects.
   */
  readonly settled: Promise<void>;
  close(): Promise<void>;
}

/** Timings of the store; the defaults are the product's, tests shorten some. */
export interface SharedStateTuning {
  /** Deadline of every Redis call: past it the call rejects (Redis may still run it). */
  readonly commandTimeoutMs: number;
  /** Deadline of a TCP connect; also how long a start may stay quiet before "unavailable". */
  readonly connectTimeoutMs: number;
  /** Reconnect backoff: 50 ms doubling up to this. */
  readonly maxBackoffMs: number;
  /** Replica heartbeat period while healthy; an id unseen for 3.5 periods is dropped. */
  readonly heartbeatMs: number;
  /** Probe period while degraded. */
  readonly probeMs: number;
}

const DEFAULT_TUNING: SharedStateTuning = {
  commandTimeoutMs: 50,
  connectTimeoutMs: 1000,
  maxBackoffMs: 1000,
  heartbeatMs: 1000,
  probeMs: 500,
};

export interface SharedStateOptions {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly tuning?: Partial<SharedStateTuning>;
}

/** Bucket keys live under this prefix. */
export const BUCKET_PREFIX = 'switchyard:rl:';
/** The replicas' heartbeat set (id → Redis time of the last beat, ms). */
export const REPLICAS_KEY = 'switchyard:replicas';

/**
 * The failure score that trips the breaker. Each failed call adds 1, each success takes
 * 0.5 off (down to 0): three failures in a row trip it, and so does more than one call in
 * three failing for a while, while a lone timeout now and then does not.
 */
const TRIP_SCORE = 3;
/**
 * Failures closer together than this count once. One stall of this process's event loop
 * longer than the deadline times out every call in flight in the same timers phase, replies
 * already waiting in the socket: that is the gateway's lag, not Redis' (load shedding deals
 * with it), and must not trip the breaker. Redis really failing keeps failing, past this.
 */
const COALESCE_MS = 5;
/** Probes timing out on an open connection this many times in a row: the socket is recycled. */
const RECYCLE_AFTER = 3;

/** Why a call to the store was refused or failed; `cause` holds the client's error, if any. */
export class SharedStateUnavailableError extends Error {
  readonly code = 'ESHAREDSTATE';
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'SharedStateUnavailableError';
  }
}

type TakeReply = [allowed: number, remaining: number, retryAfterMs: number, resetMs: number];

/** The client with the scripts defined on it (ioredis adds the methods at run time). */
type ScriptedRedis = Redis & {
  switchyardTake(key: string, intervalUs: number, burst: number): Promise<TakeReply>;
  switchyardBeat(key: string, id: string, staleMs: number): Promise<number>;
};

/**
 * The Redis owner. A small explicit breaker, not opossum: the store has two states and the
 * signals are not only call results (the connection's own close/ready events say more, and
 * sooner), recovery is decided by a probe that is itself useful work (the heartbeat) instead
 * of a user's request let through half-open, and the healthy path costs one boolean test
 * and no per-call closure or timer beyond the client's own deadline.
 *
 * - healthy → degraded: the connection closes, or the failure score reaches TRIP_SCORE
 *   (timeouts, Redis errors), or no connection within `connectTimeoutMs` of the start.
 * - degraded: `take` rejects at once without touching Redis; every `probeMs`, when the
 *   client is connected, one heartbeat is sent. Its success → healthy.
 * - Before the first connection the store counts as degraded, silently: the warn line
 *   comes only if the first attempt fails.
 */
class RedisSharedState implements SharedState {
  /** `state.on_redis_error`, applied live on a reload. */
  onError: 'local' | 'open' | 'closed';
  readonly settled: Promise<void>;
  readonly #client: ScriptedRedis;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #tuning: SharedStateTuning;
  /** Where the store is, for logs: host:port only (the URL may hold a password). */
  readonly #where: string;
  /** This process in the replicas set. */
  readonly #id = randomUUID();
  readonly #staleMs: number;
  /** One rejected promise shared by every call refused while degraded: no allocation. */
  readonly #refused: Promise<BucketDecision>;
  #settle: () => void = () => {};

  #degraded = true;
  /** The warn line for this outage was written (false before the first failure at start). */
  #announced = false;
  #everUp = false;
  #degradedSince = Date.now();
  #score = 0;
  #lastFailureAt = -Infinity;
  #replicas = 1;
  #lastReason: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** A heartbeat or probe is in flight: at most one at a time. */
  #beating = false;
  #probeTimeouts = 0;
  #closed = false;

  constructor(url: string, onError: 'local' | 'open' | 'closed', opts: SharedStateOptions) {
    this.onError = onError;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    const t = { ...DEFAULT_TUNING, ...opts.tuning };
    this.#tuning = t;
    this.#staleMs = Math.round(t.heartbeatMs * 3.5);
    this.settled = new Promise((resolve) => {
      this.#settle = resolve;
    });
    const refusal = new SharedStateUnavailableError('shared state unavailable (degraded)');
    this.#refused = Promise.reject(refusal);
    this.#refused.catch(() => {});

    this.#client = new Redis(url, {
      // Fail fast, never wait: no queue while disconnected, a deadline on every call, and
      // a call in flight when the connection drops fails instead of being resent later
      // (a resent take would spend a token for a request long since decided).
      enableOfflineQueue: false,
      commandTimeout: t.commandTimeoutMs,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: t.connectTimeoutMs,
      // Reconnect forever in the background: 50 ms doubling, capped.
      retryStrategy: (times: number) => Math.min(t.maxBackoffMs, 50 * 2 ** Math.min(times - 1, 16)),
      // Kernel keepalive notices a peer gone silent when nothing is in flight.
      keepAlive: 10_000,
      // A closing socket that gets no FIN back is destroyed after this (default 2 s, on a
      // timer that would hold a shutting-down gateway while Redis is gone).
      disconnectTimeout: 50,
      // Decisions made in one event-loop turn go out in one write (one syscall, not one each).
      enableAutoPipelining: true,
    }) as ScriptedRedis;
    this.#where = this.#client.options.path ?? `${this.#client.options.host}:${this.#client.options.port}`;
    this.#client.defineCommand('switchyardTake', { numberOfKeys: 1, lua: GCRA_TAKE });
    this.#client.defineCommand('switchyardBeat', { numberOfKeys: 1, lua: HEARTBEAT });
    // Errors are counted and described once per outage, never logged per event.
    this.#client.on('error', (err: unknown) => {
      this.#lastReason = reasonOf(err);
    });
    this.#client.on('close', () => this.#connectionLost());
    this.#client.on('ready', () => this.#beat());
    this.#metrics.stateDegraded.set(1);
    this.#schedule(t.connectTimeoutMs);
  }

  get degraded(): boolean {
    return this.#degraded;
  }

  get replicas(): number {
    return this.#replicas;
  }

  take(key: string, ratePerSecond: number, burst: number): Promise<BucketDecision> {
    if (this.#degraded) return this.#refused;
    const intervalUs = Math.max(1, Math.round(1e6 / ratePerSecond));
    return this.#client.switchyardTake(BUCKET_PREFIX + key, intervalUs, Math.max(1, Math.floor(burst)))
      .then(this.#decided, this.#failed);
  }

  readonly #decided = (r: TakeReply): BucketDecision => {
    if (this.#score > 0) this.#score = Math.max(0, this.#score - 0.5);
    return { allowed: r[0] === 1, remaining: r[1], retryAfterMs: r[2], resetMs: r[3] };
  };

  readonly #failed = (err: unknown): never => {
    this.#failure(err);
    throw new SharedStateUnavailableError(`shared state call failed: ${reasonOf(err)}`, err);
  };

  /** A call failed while healthy: score it, and trip at TRIP_SCORE. */
  #failure(err: unknown): void {
    if (this.#degraded || this.#closed) return;
    const now = performance.now();
    if (now - this.#lastFailureAt < COALESCE_MS) return;
    this.#lastFailureAt = now;
    this.#score += 1;
    if (this.#score >= TRIP_SCORE) this.#trip(reasonOf(err));
  }

  #connectionLost(): void {
    if (this.#closed) return;
    // At the start (never connected yet) the first failed attempt is what announces it.
    if (!this.#degraded || !this.#announced) this.#trip(this.#lastReason ?? 'connection closed');
  }

  /** Enter degraded (or announce it, at the start): one warn line per outage. */
  #trip(reason: string): void {
    if (!this.#degraded) {
      this.#degraded = true;
      this.#degradedSince = Date.now();
      this.#metrics.stateDegraded.set(1);
    }
    this.#score = 0;
    this.#probeTimeouts = 0;
    if (!this.#announced) {
      this.#announced = true;
      this.#log.warn({ redis: this.#where, reason, on_redis_error: this.onError },
        'shared state unavailable: limits follow state.on_redis_error until it recovers');
      this.#settle();
    }
    if (!this.#beating) this.#schedule(this.#tuning.probeMs);
  }

  #recover(replicas: number): void {
    // After an outage the others' heartbeats may have expired while they could not beat:
    // keep the count last known until the next heartbeat counts afresh (a fallback right
    // after would otherwise divide the limit by too few).
    this.#replicas = Math.max(1, replicas, this.#replicas);
    if (!this.#degraded) return;
    this.#degraded = false;
    this.#score = 0;
    this.#probeTimeouts = 0;
    this.#metrics.stateDegraded.set(0);
    if (this.#announced) {
      this.#announced = false;
      this.#log.info({ redis: this.#where, down_ms: Date.now() - this.#degradedSince, replicas: this.#replicas },
        'shared state recovered');
    } else if (!this.#everUp) {
      this.#log.info({ redis: this.#where, replicas: this.#replicas }, 'shared state connected');
    }
    this.#everUp = true;
    this.#settle();
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#tick, ms);
    this.#timer.unref();
  }

  readonly #tick = (): void => {
    this.#timer = undefined;
    if (this.#client.status === 'ready') {
      this.#beat();
      return;
    }
    // Not connected (ioredis is reconnecting): nothing to send. At the start this is the
    // moment the silence becomes an announced outage.
    if (!this.#announced) this.#trip(this.#lastReason ?? 'not connected');
    this.#schedule(this.#tuning.probeMs);
  };

  /**
   * Heartbeat while healthy, probe while degraded: the same script, which registers this
   * replica and counts the others. Its success ends an outage.
   */
  #beat(): void {
    if (this.#beating || this.#closed) return;
    this.#beating = true;
    clearTimeout(this.#timer);
    // Only a probe sent while degraded may end the outage: a heartbeat sent before the
    // breaker opened and answered late says nothing about Redis now.
    const probe = this.#degraded;
    this.#client.switchyardBeat(REPLICAS_KEY, this.#id, this.#staleMs).then((n) => {
      this.#beating = false;
      if (this.#closed) return;
      if (!this.#degraded) {
        this.#replicas = Math.max(1, n);
        if (this.#score > 0) this.#score = Math.max(0, this.#score - 0.5);
      } else if (probe) this.#recover(n);
      this.#schedule(this.#degraded ? this.#tuning.probeMs : this.#tuning.heartbeatMs);
    }, (err: unknown) => {
      this.#beating = false;
      if (this.#closed) return;
      if (this.#degraded) this.#probeFailed(err);
      else this.#failure(err);
      this.#schedule(this.#degraded ? this.#tuning.probeMs : this.#tuning.heartbeatMs);
    });
  }

  #probeFailed(err: unknown): void {
    const reason = reasonOf(err);
    this.#lastReason = reason;
    // Connected but the probe failed (scripting refused, a bad password): an outage all the same.
    if (!this.#announced) this.#trip(reason);
    // A connection that stays open while nothing comes back may be a peer gone silent
    // (no RST): start a fresh one rather than wait for TCP to give up.
    if (reason !== 'timeout') return;
    if (++this.#probeTimeouts >= RECYCLE_AFTER && this.#client.status === 'ready') {
      this.#probeTimeouts = 0;
      this.#client.disconnect(true);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const wasUp = !this.#degraded;
    this.#degraded = true;
    this.#settle();
    try {
      if (wasUp && this.#client.status === 'ready') {
        // Leave the replicas set at once so the others' limits grow back (the deadline applies).
        await this.#client.zrem(REPLICAS_KEY, this.#id).catch(() => {});
        await this.#client.quit();
      }
    } catch {
      // Redis went away meanwhile: the disconnect below ends it anyway.
    } finally {
      this.#client.disconnect();
    }
  }
}

/** Connect to the configured shared state, or nothing when the config has none. */
export function createSharedState(cfg: GatewayConfig, opts: SharedStateOptions): SharedState | undefined {
  const url = cfg.state?.redis_url;
  if (!url) return undefined;
  return new RedisSharedState(url, cfg.state?.on_redis_error ?? 'local', opts);
}
