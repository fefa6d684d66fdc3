import { CONTINUE, type Policy, type Verdict } from '../policies/policy.ts';
import type { Exchange } from './exchange.ts';

/**
 * The only code that iterates policies: in order, stopping at the first reject. A
 * `continue` that carries `onDone` is registered on the exchange, so it runs exactly once
 * when the exchange ends, whatever ends it. Stays synchronous until a policy returns a
 * promise, so sync-only chains (key auth, network) cost no microtask.
 */
export function runPolicies(ex: Exchange, policies: readonly Policy[], from = 0): Verdict | Promise<Verdict> {
  for (let i = from; i < policies.length; i++) {
    const v = policies[i]!.evaluate(ex);
    if (v instanceof Promise) {
      return v.then((r) => {
        if (r.kind === 'reject') return r;
        if (r.onDone) ex.after(r.onDone);
        return runPolicies(ex, policies, i + 1);
      });
    }
    if (v.kind === 'reject') return v;
    if (v.onDone) ex.after(v.onDone);
  }
  return CONTINUE;
}
