import type { PolicyFactory } from '../policy.ts';
import { DeploymentBreaker, type BreakerSettings } from './breaker.ts';

/** The state-registry key: a reload with the same settings keeps the breaker, changed settings start afresh. */
export function breakerKey(endpoint: string, deployment: string, s: BreakerSettings): string {
  // Built field by field, so the key does not depend on the order the user wrote them in.
  const settings = JSON.stringify({
    error_threshold_percent: s.error_threshold_percent,
    volume_threshold: s.volume_threshold,
    window_s: s.window_s,
    reset_timeout_s: s.reset_timeout_s,
  });
  return `circuit-breaker:${endpoint}/${deployment}:${settings}`;
}

/**
 * `circuit_breaker` (SPEC §2), per deployment: when the deployment's instances fail too
 * often, refuse its requests at once with 503 `CircuitOpen` instead of sending more to it,
 * then let one probe through after `reset_timeout_s`. First in the deployment stage, so a
 * refused request never waits for a concurrency slot. See {@link DeploymentBreaker}.
 */
export const circuitBreakerFactory: PolicyFactory = {
  type: 'circuit-breaker',
  stage: 'deployment',
  create(scope, deps) {
    const d = scope.deployment;
    const settings = d?.config.circuit_breaker;
    if (!d || !settings) return undefined;
    const endpoint = scope.endpoint;
    const deployment = d.name;
    const breaker = deps.state.get(
      breakerKey(endpoint, deployment, settings),
      () => new DeploymentBreaker({ endpoint, deployment, settings, clock: deps.clock, log: deps.log }),
    );
    deps.gauges.breakerState(endpoint, deployment, breaker.state);
    return breaker;
  },
};
