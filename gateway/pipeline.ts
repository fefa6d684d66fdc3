import type { RequestContext } from './context.ts';
import { CONTINUE, type Policy, type Verdict } from '../policies/policy.ts';

/**
 * The only code that iterates policies: in order, stopping at the first reject. Stays
 * synchronous until a policy returns a promise, so sync-only chains (key auth, network)
 * cost no microtask.
 */
export function runPolicies(ctx: RequestContext, policies: readonly Policy[], from = 0): Verdict | Promise<Verdict> {
  for (let i = from; i < policies.length; i++) {
    const v = policies[i]!.evaluate(ctx);
    if (v instanceof Promise) {
      return v.then((r) => (r.kind === 'continue' ? runPolicies(ctx, policies, i + 1) : r));
    }
    if (v.kind === 'reject') return v;
  }
  return CONTINUE;
}
