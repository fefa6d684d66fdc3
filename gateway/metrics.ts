import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { DeploymentLoad, PolicyGauges } from '../policies/policy.ts';

type Reader<T> = { readonly endpoint: string; readonly deployment: string; readonly read: () => T };

/**
 * Every metric the gateway exports, in one place (Envoy's stats list), on a registry of
 * its own so several gateways can live in one process (tests) without clashing.
 */
export class Metrics implements PolicyGauges {
  readonly registry = new Registry();
  readonly #loads = new Map<string, Reader<DeploymentLoad>>();
  readonly #breakers = new Map<string, Reader<number>>();
  readonly requests = new Counter({
    name: 'switchyard_requests_total',
    help: 'Requests answered, by endpoint, deployment, status code sent and how the exchange ended (termination).',
    labelNames: ['endpoint', 'deployment', 'code', 'termination'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'switchyard_request_duration_seconds',
    help: 'Time from request arrival to the end of the response.',
    labelNames: ['endpoint', 'deployment'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: 'switchyard_config_reloads_total',
    help: 'Config loads and reloads, by result (success or failure).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  #readyCollect: (() => void) | undefined;
  readonly instanceReady: Gauge<'endpoint' | 'deployment' | 'instance'> = new Gauge({
    name: 'switchyard_instance_ready',
    help: '1 when the instance takes traffic, 0 when it is unready or ejected.',
    labelNames: ['endpoint', 'deployment', 'instance'] as const,
    registers: [this.registry],
    // With N workers each probes and ejects on its own: 0 when any of them would not send
    // there (a sum would read N for "ready").
    aggregator: 'min',
    collect: (): void => this.#readyCollect?.(),
  });
  readonly authFailures = new Counter({
    name: 'switchyard_auth_failures_total',
    help: 'Rejected credentials, by endpoint and status (401 or 403).',
    labelNames: ['endpoint', 'code'] as const,
    registers: [this.registry],
  });
  readonly callerRequests = new Counter({
    name: 'switchyard_caller_requests_total',
    help: 'Authenticated requests by caller: key slot or token oid/appid (past 100 callers per endpoint: "other").',
    labelNames: ['endpoint', 'auth', 'caller'] as const,
    registers: [this.registry],
  });
  readonly keyRegenerations = new Counter({
    name: 'switchyard_key_regenerations_total',
    help: 'Endpoint keys regenerated through the admin API.',
    labelNames: ['endpoint', 'key_type'] as const,
    registers: [this.registry],
  });

  readonly clientErrors = new Counter({
    name: 'switchyard_client_errors_total',
    help: 'Requests Node itself rejected before the gateway saw them (malformed, ambiguous framing, oversized or slow headers, bad Expect), by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly throttled = new Counter({
    name: 'switchyard_throttled_total',
    help: 'Requests turned away to protect the models, by endpoint and reason (rate_limit, queue_full, queue_timeout, breaker_open, overloaded, degraded).',
    labelNames: ['endpoint', 'reason'] as const,
    registers: [this.registry],
  });
  readonly inFlight: Gauge<'endpoint' | 'deployment'> = new Gauge({
    name: 'switchyard_deployment_in_flight',
    help: 'Requests a deployment is serving now (admitted by its concurrency limit, not yet ended).',
    labelNames: ['endpoint', 'deployment'] as const,
    registers: [this.registry],
    collect: (): void => this.#collectLoad(this.inFlight, (l) => l.inFlight),
  });
  readonly queued: Gauge<'endpoint' | 'deployment'> = new Gauge({
    name: 'switchyard_deployment_queue_length',
    help: 'Requests waiting for a deployment\'s concurrency slot.',
    labelNames: ['endpoint', 'deployment'] as const,
    registers: [this.registry],
    collect: (): void => this.#collectLoad(this.queued, (l) => l.queued),
  });
  readonly breakerOpen: Gauge<'endpoint' | 'deployment'> = new Gauge({
    name: 'switchyard_circuit_breaker_state',
    help: 'A deployment\'s circuit breaker: 0 closed, 0.5 half-open (probing), 1 open.',
    labelNames: ['endpoint', 'deployment'] as const,
    registers: [this.registry],
    // Each worker has its own breaker: the most open one (a sum of states means nothing).
    aggregator: 'max',
    collect: (): void => {
      this.breakerOpen.reset();
      for (const r of this.#breakers.values()) this.breakerOpen.set({ endpoint: r.endpoint, deployment: r.deployment }, r.read());
    },
  });
  readonly ejections = new Counter({
    name: 'switchyard_instance_ejections_total',
    help: 'Instances ejected by passive outlier detection (consecutive connect errors, resets, timeouts or 5xx).',
    labelNames: ['endpoint', 'deployment', 'instance'] as const,
    registers: [this.registry],
  });
  readonly spills = new Counter({
    name: 'switchyard_spill_total',
    help: 'Requests the split meant for a deployment without a ready instance, sent to another deployment instead.',
    labelNames: ['endpoint', 'from', 'to'] as const,
    registers: [this.registry],
  });
  readonly mirrorRequests = new Counter({
    name: 'switchyard_mirror_requests_total',
    help: 'Mirrored (shadow) requests by how they ended: agree, disagree, error, timeout, not_compared, skipped_budget, skipped_body.',
    labelNames: ['endpoint', 'deployment', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly mirrorLatencyDelta = new Histogram({
    name: 'switchyard_mirror_latency_delta_seconds',
    help: 'Shadow latency minus live latency for the same mirrored request (negative: the shadow was faster).',
    labelNames: ['endpoint', 'deployment'] as const,
    buckets: [-5, -2.5, -1, -0.5, -0.25, -0.1, -0.05, -0.025, -0.01, -0.005, 0, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  #readyWaiters: (() => ReadonlyMap<string, number>) | undefined;
  readonly readyWaiting: Gauge<'endpoint'> = new Gauge({
    name: 'switchyard_ready_wait_length',
    help: 'Requests waiting for an instance to become ready (no deployment they could go to has one), by endpoint.',
    labelNames: ['endpoint'] as const,
    registers: [this.registry],
    collect: (): void => {
      this.readyWaiting.reset();
      for (const [endpoint, n] of this.#readyWaiters?.() ?? []) this.readyWaiting.set({ endpoint }, n);
    },
  });

  /** Where `switchyard_ready_wait_length` is read from at scrape time. */
  readReadyWaiters(read: () => ReadonlyMap<string, number>): void {
    this.#readyWaiters = read;
  }

  readonly liveVersion = new Gauge({
    name: 'switchyard_live_config_version',
    help: 'Version of the admin API edits document in force here (0: nothing was ever edited).',
    registers: [this.registry],
    // The oldest any worker serves.
    aggregator: 'min',
  });

  readonly liveInStep = new Gauge({
    name: 'switchyard_live_config_in_step',
    help: '1 while the stored admin edits apply here; 0 while the stored document does not validate on this replica (it serves the last one that did).',
    registers: [this.registry],
    aggregator: 'min',
  });

  readonly stateDegraded = new Gauge({
    name: 'switchyard_state_degraded',
    help: '1 while the shared state (Redis) is unavailable and limits follow state.on_redis_error.',
    registers: [this.registry],
    // 1 while any worker is without the shared state.
    aggregator: 'max',
  });

  /** How `switchyard_instance_ready` is filled at scrape time (from live health). */
  readInstanceReady(fill: () => void): void {
    this.#readyCollect = fill;
  }

  deploymentLoad(endpoint: string, deployment: string, read: () => DeploymentLoad): void {
    this.#loads.set(`${endpoint}\0${deployment}`, { endpoint, deployment, read });
  }

  breakerState(endpoint: string, deployment: string, read: () => number): void {
    this.#breakers.set(`${endpoint}\0${deployment}`, { endpoint, deployment, read });
  }

  /** Forget gauge readers of deployments no longer configured (`keep(endpoint, deployment)` false). */
  retainReaders(keep: (endpoint: string, deployment: string) => boolean): void {
    for (const m of [this.#loads, this.#breakers] as Map<string, Reader<unknown>>[]) {
      for (const [k, r] of m) if (!keep(r.endpoint, r.deployment)) m.delete(k);
    }
  }

  #collectLoad(g: Gauge<'endpoint' | 'deployment'>, pick: (l: DeploymentLoad) => number): void {
    g.reset();
    for (const r of this.#loads.values()) g.set({ endpoint: r.endpoint, deployment: r.deployment }, pick(r.read()));
  }

  constructor() {
    // prom-client's standard names (process_cpu_seconds_total, nodejs_eventloop_lag_seconds…),
    // which the stock Node.js dashboards and alerts query (SPEC §6). No prefix.
    collectDefaultMetrics({ register: this.registry });
    this.reloads.inc({ result: 'success' }, 0);
    this.reloads.inc({ result: 'failure' }, 0);
    this.stateDegraded.set(0);
    this.liveInStep.set(1);
  }
}
