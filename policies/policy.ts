import type { IncomingHttpHeaders } from 'node:http';
import type { DeploymentConfig, EndpointConfig, GatewayConfig } from '../config/schema.ts';
import type { Clock } from '../gateway/clock.ts';
import type { ErrorCode, GatewayError } from '../gateway/errors.ts';
import type { Principal } from './principal.ts';

/**
 * The protocol between policies and the request walk (Envoy's filter status, Caddy's
 * middleware contract): a policy never moves the request itself, it answers continue or
 * reject. Only `gateway/pipeline.ts` iterates policies; only `policies/index.ts` names them.
 */

/** Which listener a request arrived on. The admin listener never serves invocations. */
export type ListenerKind = 'public' | 'private';

/**
 * A request's class for queueing and shedding (the Gateway API inference extension's
 * criticality): critical queues ahead of standard; sheddable is refused first.
 */
export type PriorityClass = 'critical' | 'standard' | 'sheddable';

/** Why a request was turned away to protect the models (`switchyard_throttled_total{reason}`). */
export type ThrottleReason = 'rate_limit' | 'queue_full' | 'queue_timeout' | 'breaker_open' | 'overloaded' | 'degraded';

/**
 * How an exchange ended, apart from the status sent (Envoy's response flags, as a closed
 * set). A client that left is logged 499 with `client_aborted`.
 */
export type Termination =
  | 'completed'
  | 'client_aborted'
  | 'client_bad_request'
  | 'upstream_reset'
  | 'upstream_timeout'
  | 'shutdown';

/** What happened to a request, handed to `onDone` hooks once it ended. */
export interface Outcome {
  /** The status the client got (499 when it left before the response finished). */
  readonly status: number;
  /** The gateway error that answered, if one did. */
  readonly error: ErrorCode | undefined;
  readonly termination: Termination;
  /** The last attempt could not connect: nothing reached the instance. */
  readonly connectFailed: boolean;
  /** Origin of the instance that answered (or failed), if one was tried. */
  readonly instance: string | undefined;
  readonly durationMs: number;
}

/**
 * What a policy may see and do of a request. Implemented by the gateway's `Exchange`; there
 * is deliberately no socket, response or attempt here: policies decide, the walk acts.
 */
export interface PolicyContext {
  readonly listener: ListenerKind;
  /** The client's address (from X-Forwarded-For only when the peer is a trusted proxy). */
  readonly clientIp: string;
  readonly headers: IncomingHttpHeaders;
  readonly endpoint: string;
  /** The chosen deployment; '' in the endpoint stage. */
  readonly deployment: string;
  /** The deployment was named by the caller (`azureml-model-deployment`), not drawn by the split. */
  readonly pinned: boolean;
  /** Set by authentication, read by per-caller limits and the access line. */
  principal: Principal | undefined;
  /** The request's class (`standard` unless the endpoint's `priority` maps it otherwise). */
  priority: PriorityClass;
  /** Aborts when the client goes away before the response finished (created on first use). */
  readonly signal: AbortSignal;
  /** A header for the client's response, whether the model or the gateway answers. */
  addResponseHeader(name: string, value: string): void;
}

export type Verdict =
  | { readonly kind: 'continue'; readonly onDone?: ((outcome: Outcome) => void) | undefined }
  | { readonly kind: 'reject'; readonly error: GatewayError; readonly reason?: ThrottleReason | undefined };

/** The shared, allocation-free "go on" verdict. */
export const CONTINUE: Verdict = Object.freeze({ kind: 'continue' });

/**
 * Reject with a catalogue error (and, for throttling, why). Build rejections once per
 * snapshot where the error is fixed, so the hot path allocates nothing.
 */
export function reject(error: GatewayError, reason?: ThrottleReason): Verdict {
  return reason ? Object.freeze({ kind: 'reject', error, reason }) : Object.freeze({ kind: 'reject', error });
}

/** Continue, and run `onDone` exactly once when the exchange ends (a later reject or a client abort included). */
export function continueThen(onDone: (outcome: Outcome) => void): Verdict {
  return { kind: 'continue', onDone };
}

/**
 * A policy compiled from config once per snapshot. `evaluate` runs per request and stays
 * synchronous whenever it can (a promise costs a microtask on the hot path).
 */
export interface Policy {
  readonly name: string;
  evaluate(ctx: PolicyContext): Verdict | Promise<Verdict>;
}

/** Where a policy applies: an endpoint, or one deployment of it. */
export interface PolicyScope {
  readonly gateway: GatewayConfig;
  readonly endpoint: string;
  readonly endpointConfig: EndpointConfig;
  /** Set for deployment-stage policies. */
  readonly deployment?: { readonly name: string; readonly config: DeploymentConfig };
}

/**
 * Live state that outlives a snapshot (buckets, queues, breakers, verifier caches), kept by
 * a stable key. What a snapshot no longer asks for is dropped after the next swap.
 */
export interface StateRegistry {
  get<T>(key: string, create: () => T): T;
}

/** What policies may know of instance health. */
export interface HealthView {
  /** Instances of a deployment that take traffic now. */
  readyInstances(endpoint: string, deployment: string): number;
}

/**
 * Something with a monotonic deadline, fired once unless removed first (the gateway's
 * coarse ticker implements {@link Deadlines}; tests tick one by hand).
 */
export interface Expiring {
  deadline: number;
  expired(now: number): void;
  timerPrev?: Expiring | undefined;
  timerNext?: Expiring | undefined;
}

/** Shared deadlines (±10 ms resolution), so a queued request costs no Node timer. */
export interface Deadlines {
  /** Monotonic ms to set deadlines from. */
  readonly now: number;
  add(e: Expiring): void;
  remove(e: Expiring): void;
}

/** A deployment's load as the gauges show it. */
export interface DeploymentLoad {
  readonly inFlight: number;
  readonly queued: number;
}

/** Gauges a policy reports through, read at scrape time. */
export interface PolicyGauges {
  /** Report a deployment's in-flight and queued requests; replaces an earlier reader for it. */
  deploymentLoad(endpoint: string, deployment: string, read: () => DeploymentLoad): void;
  /** Report whether a deployment's breaker is open (1), half-open (0.5) or closed (0). */
  breakerState(endpoint: string, deployment: string, read: () => number): void;
}

/** One token-bucket decision taken in the shared store. */
export interface BucketDecision {
  readonly allowed: boolean;
  /** Whole requests the bucket would still admit now. */
  readonly remaining: number;
  /** When refused: how long until one request would be admitted (ms). */
  readonly retryAfterMs: number;
  /** How long until the bucket is full again (ms). */
  readonly resetMs: number;
}

/**
 * The state replicas share (Redis), as limits use it. One owner in the gateway holds the
 * connection, puts a short deadline and a breaker on every call, and tracks the replicas.
 */
export interface SharedLimits {
  /** What limits do while the store is unavailable (`state.on_redis_error`). */
  readonly onError: 'local' | 'open' | 'closed';
  /** The store is unavailable now (calls failing or its breaker open): decide without it. */
  readonly degraded: boolean;
  /** Gateway processes last seen sharing the store (at least 1): a local fallback divides by it. */
  readonly replicas: number;
  /**
   * Take one request from the GCRA bucket `key` (rate per second, burst) in one atomic
   * round trip. Rejects when the store failed or missed its deadline; `degraded` then says
   * whether that was one failure or an outage.
   */
  take(key: string, ratePerSecond: number, burst: number): Promise<BucketDecision>;
}

/** Minimal logger shape policies log through (pino satisfies it). */
export interface PolicyLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Regenerated key digests that override the config's, by endpoint and slot. */
export type KeyOverride = (endpoint: string, slot: 'primary' | 'secondary', configured: string | undefined) => Buffer | undefined;

/** Everything a factory may wire into a policy; all of it outlives the snapshot. */
export interface PolicyDeps {
  readonly clock: Clock;
  readonly state: StateRegistry;
  readonly health: HealthView;
  /** Gateway worker processes sharing the machine: per-process limits divide by it. */
  readonly workers: number;
  readonly log: PolicyLogger;
  readonly keyOverride: KeyOverride;
  /** Shared deadlines for waits (queued requests). */
  readonly timers: Deadlines;
  readonly gauges: PolicyGauges;
  /** The shared store when `state.redis_url` is set; undefined: limits are in-process. */
  readonly shared: SharedLimits | undefined;
}

/**
 * Turns config into a policy, once per snapshot, or into nothing when the config does not
 * ask for it. `policies/index.ts` lists the factories, per stage, in evaluation order.
 */
export interface PolicyFactory {
  readonly type: string;
  readonly stage: 'endpoint' | 'deployment';
  create(scope: PolicyScope, deps: PolicyDeps): Policy | undefined;
}
