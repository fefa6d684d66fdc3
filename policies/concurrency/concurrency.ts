import type { PolicyFactory } from '../policy.ts';

/** `request_settings` (SPEC §2). Not built yet: creates nothing. */
export const concurrencyFactory: PolicyFactory = {
  type: 'concurrency',
  stage: 'deployment',
  create() {
    return undefined;
  },
};
