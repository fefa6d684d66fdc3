import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { DeploymentConfig } from '../../config/schema.ts';
import type { Clock } from '../../gateway/clock.ts';
import { GatewayError } from '../../gateway/errors.ts';
import { continueThen, reject, type Outcome, type Policy, type PolicyLogger, type Verdict } from '../policy.ts';
import { judge } from './judge.ts';

/** A deployment's `circuit_breaker` settings (SPEC §2), defaults filled in. */
export type BreakerSettings = NonNullable<DeploymentConfig['circuit_breaker']>;

/** Slices of the rolling window (opossum's and Hystrix's default): it slides by a tenth of `window_s`. */
export const WINDOW_BUCKETS = 10;

/**
 * opossum opens when the error rate is strictly above its threshold; ours opens at the
 * threshold (Hystrix's and resilience4j's rule, and the only reading under which 100 means
 * anything). Far below 1/n for any request count a window holds, and above the float error
 * of `failures / fires * 100` (29/100 * 100 is 28.999999999999996).
 */
const AT_THRESHOLD = 1e-9;

/**
 * opossum's own open → half-open timer, pushed out of reach: the injected clock decides
 * (2^31 - 1 ms, about 24.8 days, is the longest delay Node's setTimeout honours; the timer
 * is unref'd and cleared when the breaker closes or shuts down).
 */
const NEVER_MS = 2 ** 31 - 1;

const settled = (): void => {};

/**
 * The action the breaker "runs" replays an exchange that already ended: it resolves or
 * rejects at once, with a promise settled once for all (no promise made per call, and no
 * rejection ever unhandled). opossum tallies it one or two microtasks later: before the
 * next request's I/O callback runs, and in order (a success fired before a failure is
 * counted before that failure's threshold check).
 */
const ANSWERED: Promise<void> = Promise.resolve();
const FAILED: Promise<void> = Promise.reject(new Error('the deployment failed this request'));
FAILED.catch(settled);
function replay(failed: boolean): Promise<void> {
  return failed ? FAILED : ANSWERED;
}

/** Who a breaker belongs to and what it reports through. */
export interface BreakerOptions {
  readonly endpoint: string;
  readonly deployment: string;
  readonly settings: BreakerSettings;
  readonly clock: Clock;
  readonly log: PolicyLogger;
}

/**
 * One deployment's circuit breaker, kept in the state registry across reloads (the
 * settings are part of its key). It learns from each exchange's outcome through `onDone`
 * and never wraps the forward.
 *
 * opossum keeps the rolling window and decides when to open: at least `volume_threshold`
 * counted requests in the window and at least `error_threshold_percent` of them failed.
 * Its window slides on the injected clock (a `rotateBucketController` this class emits on
 * as the clock passes slice boundaries, caught up lazily when an outcome arrives); it runs
 * no timer of its own (no snapshots, no call timeout, no interval). While closed, a request
 * costs one field read and a shared verdict; the outcome costs one fire() in `onDone`.
 *
 * The half-open phase is kept here: opossum can only enter its half-open state from its own
 * reset timer (a private function behind a real setTimeout), which must not decide. So
 * opossum stays open while this class, on the injected clock, lets one probe through after
 * `reset_timeout_s`; the probe's success closes opossum (`close()`), its failure restarts
 * the wait. The window is emptied on close: the probe showed recovery, and failures from
 * before the outage must not trip the breaker again on the next error.
 */
export class DeploymentBreaker implements Policy {
  readonly name: string;
  readonly #endpoint: string;
  readonly #deployment: string;
  readonly #settings: BreakerSettings;
  readonly #clock: Clock;
  readonly #log: PolicyLogger;
  readonly #opossum: CircuitBreaker<[boolean], void>;
  readonly #rotate = new EventEmitter();
  readonly #sliceMs: number;
  readonly #resetMs: number;
  /** Slices are counted from here, on the injected clock. */
  readonly #origin: number;
  /** The slice the window was last rotated to. */
  #slice = 0;
  /** Open or half-open: opossum tripped and no probe has closed it yet. */
  #open = false;
  #openedAt = 0;
  /** When the next probe may go through. */
  #probeAt = 0;
  /** A probe is in flight: everyone else is refused until it ends. */
  #probing = false;
  #disposed = false;
  /** The last refusal built, for the Retry-After it carries (an outage refuses many alike). */
  #refusal: Verdict | undefined;
  #refusalS = 0;
  /** Precomputed verdicts: the same bound hook is registered on every exchange. */
  readonly #admitted: Verdict;
  readonly #probe: Verdict;

  constructor(o: BreakerOptions) {
    this.#endpoint = o.endpoint;
    this.#deployment = o.deployment;
    this.#settings = o.settings;
    this.#clock = o.clock;
    this.#log = o.log;
    this.name = `${o.endpoint}/${o.deployment}.circuit-breaker`;
    const windowMs = o.settings.window_s * 1000;
    this.#sliceMs = windowMs / WINDOW_BUCKETS;
    this.#resetMs = o.settings.reset_timeout_s * 1000;
    this.#origin = o.clock();
    this.#opossum = new CircuitBreaker(replay, {
      name: `${o.endpoint}/${o.deployment}`,
      timeout: false,
      resetTimeout: NEVER_MS,
      errorThresholdPercentage: o.settings.error_threshold_percent - AT_THRESHOLD,
      volumeThreshold: o.settings.volume_threshold,
      rollingCountTimeout: windowMs,
      rollingCountBuckets: WINDOW_BUCKETS,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.#rotate,
    });
    this.#opossum.on('open', () => this.#opened());
    this.#opossum.on('close', () => this.#closed());
    this.#admitted = continueThen((outcome) => this.#record(outcome));
    this.#probe = continueThen((outcome) => this.#probed(outcome));
  }

  /** Closed: admit and learn from the outcome. Open: 503 until the probe time, then one probe at a time. */
  evaluate(): Verdict {
    if (!this.#open) return this.#admitted;
    const now = this.#clock();
    // A wall clock stepped back must not stretch the wait past reset_timeout_s.
    if (this.#probeAt - now > this.#resetMs) this.#probeAt = now + this.#resetMs;
    if (now >= this.#probeAt && !this.#probing) {
      this.#probing = true;
      return this.#probe;
    }
    return this.#refuse(Math.max(1, Math.ceil((this.#probeAt - now) / 1000)));
  }

  /** For `switchyard_circuit_breaker_state`: 0 closed, 0.5 half-open (a probe may go or is in flight), 1 open. */
  readonly state = (): number => {
    if (!this.#open) return 0;
    return this.#probing || this.#clock() >= this.#probeAt ? 0.5 : 1;
  };

  /** Shut opossum down (the state registry calls this when no config asks for this breaker any more). */
  dispose(): void {
    this.#disposed = true;
    this.#open = false;
    this.#opossum.shutdown();
    this.#rotate.removeAllListeners();
  }

  /** An exchange admitted while closed ended. Outcomes that end while open were decided already. */
  #record(outcome: Outcome): void {
    if (this.#open || this.#disposed) return;
    const j = judge(outcome);
    if (j === 'ignore') return;
    this.#slide(this.#clock());
    // A failure rejects (nothing to handle: opossum has counted it by then).
    this.#opossum.fire(j === 'failure').catch(settled);
  }

  /** The probe ended: success closes, failure waits `reset_timeout_s` again, no verdict frees the slot. */
  #probed(outcome: Outcome): void {
    this.#probing = false;
    if (this.#disposed) return;
    const j = judge(outcome);
    if (j === 'ignore') return;
    if (j === 'success') {
      this.#opossum.close();
      return;
    }
    const now = this.#clock();
    this.#probeAt = now + this.#resetMs;
    this.#log.info({
      endpoint: this.#endpoint,
      deployment: this.#deployment,
      status: outcome.status,
      retry_in_s: this.#settings.reset_timeout_s,
    }, 'circuit breaker probe failed; staying open');
    // Only if opossum's own 24-day timer ever half-opened it.
    if (!this.#opossum.opened) this.#opossum.open();
  }

  /** opossum tripped, tallying the failure that tipped the rate (a microtask after its exchange ended). */
  #opened(): void {
    if (this.#open) return;
    const now = this.#clock();
    this.#open = true;
    this.#openedAt = now;
    this.#probeAt = now + this.#resetMs;
    this.#probing = false;
    const s = this.#opossum.stats;
    this.#log.warn({
      endpoint: this.#endpoint,
      deployment: this.#deployment,
      error_percent: Math.round((s.failures / s.fires) * 1000) / 10,
      failures: s.failures,
      requests: s.fires,
      window_s: this.#settings.window_s,
      reset_timeout_s: this.#settings.reset_timeout_s,
    }, 'circuit breaker opened');
  }

  /** A probe succeeded and closed opossum: start from an empty window. */
  #closed(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#probing = false;
    for (let i = 0; i < WINDOW_BUCKETS; i++) this.#rotate.emit('rotate');
    this.#log.info({
      endpoint: this.#endpoint,
      deployment: this.#deployment,
      open_s: (this.#clock() - this.#openedAt) / 1000,
    }, 'circuit breaker closed');
  }

  /** Rotate the window up to `now` (at most a whole window's worth: older slices are empty anyway). */
  #slide(now: number): void {
    const slice = Math.floor((now - this.#origin) / this.#sliceMs);
    let n = slice - this.#slice;
    this.#slice = slice;
    // n < 0: the clock stepped back; the window goes on sliding from there.
    if (n <= 0) return;
    if (n > WINDOW_BUCKETS) n = WINDOW_BUCKETS;
    while (n-- > 0) this.#rotate.emit('rotate');
  }

  #refuse(retryAfterS: number): Verdict {
    if (this.#refusal === undefined || this.#refusalS !== retryAfterS) {
      this.#refusalS = retryAfterS;
      this.#refusal = reject(new GatewayError('CircuitOpen', undefined, { 'retry-after': String(retryAfterS) }), 'breaker_open');
    }
    return this.#refusal;
  }
}
