import type { PolicyFactory } from '../policy.ts';

/** `server.load_shedding` (SPEC §2). Not built yet: creates nothing. */
export const loadShedFactory: PolicyFactory = {
  type: 'load-shed',
  stage: 'endpoint',
  create() {
    return undefined;
  },
};
