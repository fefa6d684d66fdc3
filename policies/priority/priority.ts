import type { PolicyFactory } from '../policy.ts';

/** `priority` (SPEC §2). Not built yet: creates nothing. */
export const priorityFactory: PolicyFactory = {
  type: 'priority',
  stage: 'endpoint',
  create() {
    return undefined;
  },
};
