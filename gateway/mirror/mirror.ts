import type { EndpointConfig } from '../../config/schema.ts';
import type { Outcome } from '../../policies/policy.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { upstreamPath } from '../routing/route.ts';
import type { CompiledDeployment } from '../snapshot/deployment.ts';
import type { AttemptRequest, AttemptResult } from '../upstream/attempt.ts';
import { Forward, type ForwardOwner } from '../upstream/forward.ts';
import type { Instance } from '../upstream/instance.ts';
import type { Sink } from '../upstream/sink.ts';
import { performance } from 'node:perf_hooks';
import { deadlines, type Expiring } from '../coarse-timers.ts';
import { CaptureSink, TeeSink } from './capture.ts';
import { compareAnswers } from './compare.ts';
import { NoiseModel } from './noise.ts';
import { disagreementLogLine, MirrorStats } from './report.ts';
import type { CapturedAnswer, Comparison, MirrorOutcome } from './types.ts';

/** What the mirror needs from the gateway around it; all of it outlives a snapshot. */
export interface MirrorDeps {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: () => number;
}

/**
 * What the mirror sees of a live exchange: its response (as a sink to tee), where its path
 * goes, which instance it went to, and its end. (Not the Exchange itself: the snapshot,
 * which the exchange holds, holds the mirror.)
 */
export interface MirroredExchange extends Sink {
  readonly upstreamPath: string;
  readonly instance: string | undefined;
  after(fn: (o: Outcome) => void): void;
}

/** Every this-many mirrored requests, one also gets a second live copy (noise baseline). */
const NOISE_EVERY = 10;
/** At most one disagreement log line per endpoint this often. */
const LOG_EVERY_MS = 10_000;

const OVER_CAP = new Error('the copy passed mirror_max_body_bytes');
const COPY_TIMEOUT = new Error('the copy passed its deadline');

/**
 * The answer of a forward that only captures (a shadow, or a second live copy). It stops
 * reading as soon as the answer passes the cap (it can only be `not_compared` then), and
 * once the live exchange has ended it has `request_timeout_ms` more to finish, so a shadow
 * that streams forever cannot hold a budget slot forever.
 */
class CaptureCall implements ForwardOwner, Expiring {
  attempt: ForwardOwner['attempt'];
  instance: string | undefined;
  connectFailed = false;
  readonly sink: CaptureSink;
  readonly #done: (a: CapturedAnswer) => void;
  #timedOut = false;
  #finished = false;
  deadline = 0;
  timerPrev: Expiring | undefined = undefined;
  timerNext: Expiring | undefined = undefined;

  constructor(cap: number, done: (a: CapturedAnswer) => void) {
    this.sink = new CaptureSink(cap);
    this.sink.onOverCap = () => this.#stop(OVER_CAP);
    this.#done = done;
  }

  /** The live exchange ended: this copy has `ms` more. */
  armDeadline(ms: number): void {
    if (this.#finished) return;
    this.deadline = deadlines.now + ms;
    deadlines.add(this);
  }

  expired(): void {
    if (this.#finished) return;
    this.#timedOut = true;
    this.#stop(COPY_TIMEOUT);
  }

  /**
   * The mirror stops reading (not the instance failing): the sink says it is gone, as a
   * client that left would, so outlier detection does not count it against the instance.
   */
  #stop(reason: Error): void {
    this.sink.destroyed = true;
    this.attempt?.abort(reason);
  }

  forwarded(r: AttemptResult): void {
    this.#finished = true;
    deadlines.remove(this);
    const copy = this.sink.copy;
    if (copy.overCap) {
      // Read up to the cap and no further: an answer too large to compare.
      copy.end(false);
      this.#done(copy.answer());
    } else if (this.#timedOut) {
      copy.end(false);
      this.#done(copy.answer('timeout'));
    } else if (r.kind === 'error') {
      copy.end(false);
      this.#done(copy.answer(r.error.code === 'GatewayTimeout' ? 'timeout' : 'error'));
    } else if (!r.complete) {
      this.#done(copy.answer(r.cut === 'upstream_timeout' ? 'timeout' : 'error'));
    } else {
      this.#done(copy.answer());
    }
  }
}

/** Copies out at once, per endpoint and shadow deployment: shared by every mirror setting, so a reload cannot open a second budget. */
export interface MirrorBudget {
  inFlight: number;
}

/**
 * How much of the event loop comparisons may take: a bucket of milliseconds refilled at
 * 5% of wall time (50 ms a second, at most 100 ms banked). Past it a comparison is skipped
 * (`not_compared`, reason `busy`): parsing two 1 MB JSON answers takes ~8 ms, and mirroring
 * must not cost live throughput.
 */
class CompareBudget {
  #tokens = 100;
  #at = performance.now();

  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(100, this.#tokens + (now - this.#at) * 0.05);
    this.#at = now;
    return this.#tokens > 0;
  }

  spend(ms: number): void {
    this.#tokens -= ms;
  }
}

/** One mirrored request's answers, settled once all have come. */
class Pending {
  live: CapturedAnswer | undefined;
  shadow: CapturedAnswer | undefined;
  /** A second live answer, when this request feeds the noise baseline. */
  baseline: CapturedAnswer | undefined;
  waiting: number;

  constructor(waiting: number) {
    this.waiting = waiting;
  }
}

/**
 * Shadow traffic for one endpoint (SPEC `mirror_traffic`): a deterministic share of the
 * requests that reach a live deployment by the split (never pinned ones) is copied to the
 * shadow deployment, with `x-shadow-request: 1` and the shadow's own timeout. The client's
 * response never waits for the copy and never sees it; its answer is compared with the
 * live one (captured by a tee, up to `mirror_max_body_bytes`, without delaying the client).
 *
 * Safety: only bodies already in memory and within `mirror_max_body_bytes` are copied
 * (`skipped_body` otherwise); at most `mirror_max_in_flight` copies are out at once
 * (`skipped_budget` otherwise), each holding at most two capped answers, so a slow or
 * dead shadow grows neither memory nor live latency.
 *
 * Kept in the state registry by endpoint and mirror settings: a reload that keeps them
 * keeps the sampling position and the report ("since the mirror was set").
 */
export class Mirror {
  readonly endpoint: string;
  readonly percent: number;
  readonly stats: MirrorStats;
  readonly #deps: MirrorDeps;
  readonly #noise: NoiseModel | undefined;
  readonly #compareBudget = new CompareBudget();
  #shadow: CompiledDeployment;
  #cap: number;
  #max: number;
  #budget: MirrorBudget;
  #tolerance: number;
  /** Sampling accumulator: +percent per request, a copy each time it reaches 100. */
  #acc = 0;
  #mirrored = 0;
  #lastLog = 0;

  constructor(endpoint: string, shadow: string, percent: number, noiseBaseline: boolean, deps: MirrorDeps) {
    this.endpoint = endpoint;
    this.percent = percent;
    this.#deps = deps;
    this.#noise = noiseBaseline ? new NoiseModel() : undefined;
    this.stats = new MirrorStats(deps.clock, { endpoint, deployment: shadow, percent });
    // Set by configure() before first use.
    this.#shadow = undefined as unknown as CompiledDeployment;
    this.#cap = 0;
    this.#max = 0;
    this.#budget = { inFlight: 0 };
    this.#tolerance = 0;
  }

  /** Apply a compiled snapshot's view: the shadow deployment, the limits, the shared budget. */
  configure(shadow: CompiledDeployment, ep: EndpointConfig, budget: MirrorBudget): void {
    this.#shadow = shadow;
    this.#cap = ep.mirror_max_body_bytes;
    this.#max = ep.mirror_max_in_flight;
    this.#budget = budget;
    this.#tolerance = ep.mirror_compare?.number_tolerance ?? 1e-6;
  }

  get shadow(): string {
    return this.#shadow.name;
  }

  get inFlight(): number {
    return this.#budget.inFlight;
  }

  /**
   * Decide for one live request about to be forwarded to `live`: nothing (the client's own
   * response is the sink), or a copy to the shadow (the returned tee is the live sink).
   */
  plan(ex: MirroredExchange, live: CompiledDeployment, request: AttemptRequest): Sink {
    this.#acc += this.percent;
    if (this.#acc < 100) return ex;
    this.#acc -= 100;
    const body = request.body;
    const size = body === null ? 0 : Buffer.isBuffer(body) ? body.length : Array.isArray(body) ? chunkListLength(body) : -1;
    if (size < 0 || size > this.#cap) return this.#skip('skipped_body'), ex;
    const budget = this.#budget;
    if (budget.inFlight >= this.#max) return this.#skip('skipped_budget'), ex;
    // The baseline's second live copy counts against the same budget, and goes only when the
    // live deployment has a free slot then: it must never queue in front of real callers.
    const baseline = this.#noise !== undefined && this.#mirrored % NOISE_EVERY === 0 && budget.inFlight + 2 <= this.#max;
    this.#mirrored++;
    budget.inFlight += baseline ? 2 : 1;
    const pending = new Pending(baseline ? 3 : 2);
    const tee = new TeeSink(ex, this.#cap);
    const shadow = this.#shadow;
    const calls: CaptureCall[] = [];
    ex.after((o: Outcome) => {
      const failed = o.error !== undefined || o.termination !== 'completed';
      pending.live = tee.copy.answer(failed ? (o.termination === 'upstream_timeout' ? 'timeout' : 'error') : undefined);
      // The live answer is in: the copies have the shadow's request_timeout_ms more to finish.
      for (const c of calls) c.armDeadline(shadow.timeoutMs);
      this.#arrived(pending, baseline);
    });
    const shadowRequest: AttemptRequest = {
      method: request.method,
      path: upstreamPath(ex.upstreamPath, shadow.scoringRoute),
      headers: [...request.headers, 'x-shadow-request', '1'],
      body,
      timeoutMs: shadow.timeoutMs,
      sendTimeoutMs: request.sendTimeoutMs,
    };
    // Sent once the live request is on its way (and its instance known): live goes first.
    queueMicrotask(() => {
      calls.push(this.#send(shadow, shadowRequest, undefined, (a) => {
        budget.inFlight--;
        pending.shadow = a;
        this.#arrived(pending, baseline);
      }));
      if (!baseline) return;
      // Checked now that the live request is on its way (and counted in flight).
      if (!hasSpareCapacity(live, this.#deps.clock())) {
        this.#noise?.liveWasBusy();
        budget.inFlight--;
        this.#arrived(pending, baseline);
        return;
      }
      const again: AttemptRequest = { ...request, headers: [...request.headers, 'x-shadow-request', '1'] };
      // Another instance than the live one, when there is one: the noise of the model, not of one process.
      calls.push(this.#send(live, again, live.instances.find((i) => i.origin === ex.instance), (a) => {
        budget.inFlight--;
        pending.baseline = a;
        this.#arrived(pending, baseline);
      }));
    });
    return tee;
  }

  #send(d: CompiledDeployment, request: AttemptRequest, avoid: Instance | undefined, done: (a: CapturedAnswer) => void): CaptureCall {
    const call = new CaptureCall(this.#cap, done);
    new Forward(call, call.sink, d, request, this.#deps.clock, this.#deps.random, avoid).start();
    return call;
  }

  #skip(outcome: 'skipped_body' | 'skipped_budget'): void {
    this.stats.skipped(outcome);
    this.#count(outcome);
  }

  #count(outcome: MirrorOutcome): void {
    this.#deps.metrics.mirrorRequests.inc({ endpoint: this.endpoint, deployment: this.#shadow.name, outcome });
  }

  #arrived(p: Pending, baseline: boolean): void {
    if (--p.waiting > 0) return;
    // Parsing two large JSON answers can take milliseconds: after the I/O already waiting,
    // so the comparison never sits in front of live traffic.
    setImmediate(() => this.#settle(p, baseline));
  }

  #settle(p: Pending, baseline: boolean): void {
    const live = p.live!;
    const shadow = p.shadow!;
    let cmp: Comparison;
    if (this.#compareBudget.take()) {
      const began = performance.now();
      if (baseline && p.baseline && this.#noise) this.#noise.learn(live, p.baseline, this.#tolerance);
      cmp = compareAnswers(live, shadow, { numberTolerance: this.#tolerance });
      this.#compareBudget.spend(performance.now() - began);
    } else {
      cmp = BUSY;
    }
    // A copy that never left the gateway (no ready shadow instance) has no latency to speak of.
    const sent = !(shadow.failure === 'error' && shadow.status === 0 && shadow.latencyMs < 1);
    const outcome = this.stats.record({ comparison: cmp, liveLatencyMs: live.latencyMs, shadowLatencyMs: sent ? shadow.latencyMs : undefined, shadowStatus: shadow.status }, this.#noise);
    this.#count(outcome);
    if (live.failure === undefined && shadow.failure === undefined) {
      this.#deps.metrics.mirrorLatencyDelta.observe({ endpoint: this.endpoint, deployment: this.#shadow.name }, (shadow.latencyMs - live.latencyMs) / 1000);
    }
    if (outcome === 'disagree') this.#logDisagreement(cmp);
  }

  #logDisagreement(cmp: Comparison): void {
    const now = this.#deps.clock();
    if (now - this.#lastLog < LOG_EVERY_MS) return;
    this.#lastLog = now;
    this.#deps.log.info({ endpoint: this.endpoint, deployment: this.#shadow.name, ...disagreementLogLine(cmp, this.#noise) }, 'shadow answer disagrees');
  }
}

/** A comparison skipped because comparisons used their share of the event loop. */
const BUSY: Comparison = Object.freeze({ outcome: 'not_compared', diffs: [], reason: 'busy' });

/** The live deployment serves fewer requests than its concurrency limit allows right now. */
function hasSpareCapacity(d: CompiledDeployment, now: number): boolean {
  let inFlight = 0;
  let ready = 0;
  for (const i of d.instances) {
    inFlight += i.inFlight;
    if (i.takesTraffic(now)) ready++;
  }
  return inFlight < d.concurrencyPerInstance * ready;
}

function chunkListLength(chunks: readonly Buffer[]): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}
