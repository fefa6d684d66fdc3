import { GatewayError } from '../../gateway/errors.ts';
import {
  continueThen,
  reject,
  type Deadlines,
  type DeploymentLoad,
  type Expiring,
  type HealthView,
  type Policy,
  type PolicyContext,
  type Verdict,
} from '../policy.ts';
import { Lane, LANE, QUEUED, SHEDDABLE_LANE, Waiter, type WaiterOwner } from './wait-queue.ts';

/** A deployment's `request_settings` as the limiter uses them. */
export interface LimiterSettings {
  /** `max_concurrent_requests_per_instance`. */
  readonly perInstance: number;
  /** `max_queue_wait_ms`; 0: no queue. */
  readonly maxWaitMs: number;
  /** Gateway worker processes on the machine: each takes its share of the limit. */
  readonly workers: number;
}

/** What the limiter reads of the gateway; outlives every snapshot. */
export interface LimiterDeps {
  readonly health: HealthView;
  readonly timers: Deadlines;
}

/**
 * While requests wait, the ready count is re-read this often (ms), so waiters are admitted
 * when an instance comes up even if no request ends meanwhile. The shared ticker's
 * resolution (10 ms) bounds it anyway.
 */
export const POLL_MS = 10;

/** The Retry-After a refusal carries: the queue wait in whole seconds, at least 1 (RFC 9110 §10.2.3). */
export function retryAfterSeconds(maxWaitMs: number): string {
  return String(Math.max(1, Math.ceil(maxWaitMs / 1000)));
}

/**
 * A deployment's concurrency limit with a bounded, priority-aware FIFO queue (SPEC §2
 * `request_settings`; issue 9). Live state, kept in the state registry across snapshot
 * swaps: a reload keeps the in-flight count and the queue, and {@link configure} updates
 * the settings in place. It is itself the policy every snapshot's deployment stage calls.
 *
 * - Limit: `max_concurrent_requests_per_instance × ready instances ÷ workers`, rounded up,
 *   at least 1; the ready count is read when it matters (see {@link evaluate}).
 * - Queue: at most as many again as the limit (Azure admits 2× the concurrency), each for
 *   at most `max_queue_wait_ms`; past either: 429 `TooManyPendingRequests`.
 * - Classes: critical waiters are served before standard, standard before sheddable; FIFO
 *   within a class. Sheddable requests get no slot once the queue is half full. A full
 *   queue makes room for a standard arrival by refusing the newest sheddable waiter, and for
 *   a critical arrival by refusing the newest sheddable, else the newest standard waiter.
 * - No ready instance: the limiter steps aside (admits, and lets its waiters go), so the
 *   forward answers with the truth (503 `NoReadyInstance`) rather than a 429 later.
 */
export class DeploymentLimiter implements Policy, WaiterOwner {
  readonly name: string;
  readonly endpoint: string;
  readonly deployment: string;
  /** Permits held: requests admitted whose exchange has not ended. */
  inFlight = 0;
  /** Requests waiting in the lanes. */
  queued = 0;
  /** The shared verdict of every request admitted without waiting: its `onDone` returns the permit. */
  readonly admitted: Verdict;
  /** Return one permit and hand it straight to the next waiter, if any. Bound once. */
  readonly release = (): void => {
    this.inFlight--;
    if (this.queued !== 0) this.#pump();
  };
  /** The gauge reader (`switchyard_deployment_in_flight`, `_queue_length`). */
  readonly load = (): DeploymentLoad => ({ inFlight: this.inFlight, queued: this.queued });

  /** Refusals, rebuilt when `max_queue_wait_ms` (their Retry-After) changes. */
  timedOut!: Verdict;
  full!: Verdict;
  /** A client that left while queued: nothing is sent (the exchange already ended), no throttle reason. */
  readonly gone: Verdict = reject(new GatewayError('TooManyPendingRequests', 'The client went away while the request was queued.'));

  readonly #lanes: readonly [Lane, Lane, Lane] = [new Lane(), new Lane(), new Lane()];
  readonly #deps: LimiterDeps;
  #perInstance = 1;
  #workers = 1;
  #maxWaitMs = 0;
  /** The limit with one ready instance: the least it can be while any instance is ready. */
  #floor = 1;
  /** Re-reads the ready count while requests wait (see {@link POLL_MS}). */
  readonly #poll: Expiring & { armed: boolean };

  constructor(endpoint: string, deployment: string, settings: LimiterSettings, deps: LimiterDeps) {
    this.endpoint = endpoint;
    this.deployment = deployment;
    this.name = `${endpoint}.${deployment}.concurrency`;
    this.#deps = deps;
    this.admitted = Object.freeze(continueThen(this.release));
    this.#poll = {
      deadline: 0,
      armed: false,
      timerPrev: undefined,
      timerNext: undefined,
      expired: () => {
        this.#poll.armed = false;
        if (this.queued !== 0) this.#pump();
        this.#armPoll();
      },
    };
    this.configure(settings);
  }

  /** Apply (possibly changed) settings in place; a grown limit admits waiters at once. */
  configure(s: LimiterSettings): void {
    if (s.maxWaitMs !== this.#maxWaitMs || !this.full) {
      const headers = { 'retry-after': retryAfterSeconds(s.maxWaitMs) };
      this.full = reject(new GatewayError('TooManyPendingRequests', undefined, headers), 'queue_full');
      this.timedOut = reject(new GatewayError('TooManyPendingRequests', undefined, headers), 'queue_timeout');
    }
    this.#perInstance = s.perInstance;
    this.#workers = Math.max(1, s.workers);
    this.#maxWaitMs = s.maxWaitMs;
    this.#floor = this.limitFor(1);
    if (this.queued !== 0) this.#pump();
  }

  /** The in-flight limit with `ready` instances ready (in this process's share). */
  limitFor(ready: number): number {
    return Math.max(1, Math.ceil((this.#perInstance * ready) / this.#workers));
  }

  /**
   * Admit (synchronously, with the shared verdict), queue (a promise), or refuse.
   *
   * Fast path: nobody waits and fewer requests are in flight than the limit with a single
   * ready instance. Any ready count allows at least that much and none lets everything
   * through, so the health view need not be read: no allocation, no lookup.
   */
  evaluate(ctx: PolicyContext): Verdict | Promise<Verdict> {
    if (this.queued === 0 && this.inFlight < this.#floor) {
      this.inFlight++;
      return this.admitted;
    }
    const ready = this.#deps.health.readyInstances(this.endpoint, this.deployment);
    if (ready === 0) {
      if (this.queued !== 0) this.#grantWhile(Infinity);
      this.inFlight++;
      return this.admitted;
    }
    const limit = this.limitFor(ready);
    // Waiters go first when room appeared (an instance came up) since they were queued.
    if (this.queued !== 0) this.#grantWhile(limit);
    if (this.queued === 0 && this.inFlight < limit) {
      this.inFlight++;
      return this.admitted;
    }
    return this.#enqueue(ctx, limit);
  }

  /** Take `w` out of its lane and the deadlines, and settle it with a refusal. */
  withdraw(w: Waiter, verdict: Verdict): void {
    this.#unlink(w);
    w.settle(verdict, false);
  }

  #enqueue(ctx: PolicyContext, limit: number): Verdict | Promise<Verdict> {
    const capacity = this.#maxWaitMs > 0 ? limit : 0;
    const lane = LANE[ctx.priority];
    if (lane === SHEDDABLE_LANE) {
      // Sheddable requests are refused first: no slot once the queue is half full.
      if (this.queued * 2 >= capacity) return this.full;
    } else if (this.queued >= capacity) {
      const victim = this.#displaceable(lane);
      if (!victim) return this.full;
      this.withdraw(victim, this.full);
    }
    const signal = ctx.signal;
    if (signal.aborted) return this.gone;
    const w = new Waiter(this, lane, signal);
    this.#lanes[lane]!.push(w);
    this.queued++;
    const timers = this.#deps.timers;
    w.deadline = timers.now + this.#maxWaitMs;
    timers.add(w);
    this.#armPoll();
    return w.wait();
  }

  /**
   * Whom a full queue refuses to make room for an arrival in `lane`: the newest sheddable
   * waiter, and for a critical arrival, failing that, the newest standard one. Newest, so
   * the requests that waited longest keep their place.
   */
  #displaceable(lane: number): Waiter | undefined {
    if (lane === SHEDDABLE_LANE) return undefined;
    const l = this.#lanes;
    return l[SHEDDABLE_LANE]!.tail ?? (lane === LANE.critical ? l[LANE.standard]!.tail : undefined);
  }

  /** Re-read the ready count and admit waiters while there is room. */
  #pump(): void {
    const ready = this.#deps.health.readyInstances(this.endpoint, this.deployment);
    this.#grantWhile(ready === 0 ? Infinity : this.limitFor(ready));
  }

  /** Hand permits to waiters, best class first, oldest first, while fewer than `limit` are in flight. */
  #grantWhile(limit: number): void {
    const lanes = this.#lanes;
    while (this.queued !== 0 && this.inFlight < limit) {
      const w = (lanes[0].head ?? lanes[1].head ?? lanes[2].head)!;
      this.#unlink(w);
      this.inFlight++;
      w.settle(continueThen(w.finish), true);
    }
  }

  #unlink(w: Waiter): void {
    if (w.state !== QUEUED) return;
    this.#lanes[w.lane]!.remove(w);
    this.queued--;
    this.#deps.timers.remove(w);
  }

  #armPoll(): void {
    const p = this.#poll;
    if (p.armed || this.queued === 0) return;
    p.armed = true;
    p.deadline = this.#deps.timers.now + POLL_MS;
    this.#deps.timers.add(p);
  }
}
