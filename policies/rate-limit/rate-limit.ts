import type { PolicyFactory } from '../policy.ts';

/** `rate_limit` (SPEC §2). Not built yet: creates nothing. */
export const rateLimitFactory: PolicyFactory = {
  type: 'rate-limit',
  stage: 'endpoint',
  create() {
    return undefined;
  },
};
