import { authFactory } from './auth/auth.ts';
import { networkFactory } from './network/network.ts';
import type { PolicyFactory } from './policy.ts';

/**
 * Every policy, per stage, in evaluation order. Compile iterates these lists and never
 * names a policy: adding one is a folder plus a line here.
 *
 * Endpoint stage: before a deployment is chosen (who may call, how often).
 * Deployment stage: after (what the chosen deployment can take).
 */
export const ENDPOINT_POLICIES: readonly PolicyFactory[] = [
  networkFactory,
  authFactory,
];

export const DEPLOYMENT_POLICIES: readonly PolicyFactory[] = [];
