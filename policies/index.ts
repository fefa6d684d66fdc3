import { authFactory } from './auth/auth.ts';
import { circuitBreakerFactory } from './circuit-breaker/circuit-breaker.ts';
import { concurrencyFactory } from './concurrency/concurrency.ts';
import { loadShedFactory } from './load-shed/load-shed.ts';
import { networkFactory } from './network/network.ts';
import type { PolicyFactory } from './policy.ts';
import { priorityFactory } from './priority/priority.ts';
import { rateLimitFactory } from './rate-limit/rate-limit.ts';

/**
 * Every policy, per stage, in evaluation order. Compile iterates these lists and never
 * names a policy: adding one is a folder plus a line here.
 *
 * Endpoint stage: before a deployment is chosen (who may call, in which class, how often).
 * Priority follows auth because a class may come from the caller; shedding follows it so
 * sheddable requests go first; the rate limit comes last, so refused requests spend no tokens.
 *
 * Deployment stage: after the deployment is chosen and the body is in hand (what the
 * deployment can take). The breaker refuses before a request queues for a slot.
 */
export const ENDPOINT_POLICIES: readonly PolicyFactory[] = [
  networkFactory,
  authFactory,
  priorityFactory,
  loadShedFactory,
  rateLimitFactory,
];

export const DEPLOYMENT_POLICIES: readonly PolicyFactory[] = [
  circuitBreakerFactory,
  concurrencyFactory,
];
