import type { PolicyFactory } from '../policy.ts';
import { DeploymentLimiter, type LimiterSettings } from './limiter.ts';

/** The state registry key of a deployment's limiter: one per deployment, whatever its settings. */
export function limiterKey(endpoint: string, deployment: string): string {
  return `concurrency:${endpoint}/${deployment}`;
}

/**
 * Per-deployment concurrency with a bounded, priority-aware queue (SPEC §2
 * `request_settings`: `max_concurrent_requests_per_instance`, `max_queue_wait_ms`).
 * Deployment stage, after the circuit breaker (an open breaker refuses before a request
 * queues) and after the body was read (a slow upload never holds a slot).
 *
 * Every deployment gets one: the settings have defaults (16 per instance, 500 ms), as in
 * SPEC. The limiter is live state keyed by deployment only, so a reload (including one that
 * changes the settings) keeps its in-flight count and its queue; the new settings apply in
 * place, and the old snapshot's requests return their permits to the same limiter.
 */
export const concurrencyFactory: PolicyFactory = {
  type: 'concurrency',
  stage: 'deployment',
  create(scope, deps) {
    const d = scope.deployment;
    if (!d) return undefined;
    const rs = d.config.request_settings;
    const settings: LimiterSettings = {
      perInstance: rs.max_concurrent_requests_per_instance,
      maxWaitMs: rs.max_queue_wait_ms,
      workers: deps.workers,
    };
    let created = false;
    const limiter = deps.state.get(limiterKey(scope.endpoint, d.name), () => {
      created = true;
      return new DeploymentLimiter(scope.endpoint, d.name, settings, deps);
    });
    if (!created) limiter.configure(settings);
    deps.gauges.deploymentLoad(scope.endpoint, d.name, limiter.load);
    return limiter;
  },
};
