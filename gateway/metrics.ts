import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric the gateway exports, in one place (Envoy's stats list), on a registry of
 * its own so several gateways can live in one process (tests) without clashing.
 */
export class Metrics {
  readonly registry = new Registry();
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
  readonly instanceReady = new Gauge({
    name: 'switchyard_instance_ready',
    help: '1 when the instance takes traffic, 0 when it is unready or ejected.',
    labelNames: ['endpoint', 'deployment', 'instance'] as const,
    registers: [this.registry],
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

  constructor() {
    // prom-client's standard names (process_cpu_seconds_total, nodejs_eventloop_lag_seconds…),
    // which the stock Node.js dashboards and alerts query (SPEC §6). No prefix.
    collectDefaultMetrics({ register: this.registry });
    this.reloads.inc({ result: 'success' }, 0);
    this.reloads.inc({ result: 'failure' }, 0);
  }
}
