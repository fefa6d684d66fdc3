import type { PolicyFactory } from '../policy.ts';

/** `circuit_breaker` (SPEC §2). Not built yet: creates nothing. */
export const circuitBreakerFactory: PolicyFactory = {
  type: 'circuit-breaker',
  stage: 'deployment',
  create() {
    return undefined;
  },
};
