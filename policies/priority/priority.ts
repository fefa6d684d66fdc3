import { CONTINUE, type PolicyContext, type PolicyFactory, type PriorityClass, type Verdict } from '../policy.ts';

/** Higher is served first and shed last. */
const RANK: Readonly<Record<PriorityClass, number>> = { sheddable: 0, standard: 1, critical: 2 };
const BY_RANK: readonly PriorityClass[] = ['sheddable', 'standard', 'critical'];

/** The class a header value names (case-insensitive), or undefined. */
export function headerClass(v: string | string[] | undefined): PriorityClass | undefined {
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  return s === 'critical' || s === 'standard' || s === 'sheddable' ? s : undefined;
}

/**
 * A request's class (SPEC §2 `priority`; the Gateway API inference extension's criticality):
 *
 * - the caller's class from `callers`, matched against the key slot (`primary`,
 *   `secondary`), a token's `oid`, and each of its roles (the highest match wins);
 * - else `default`;
 * - then the request header (`header`, default `x-priority`) may LOWER it, never raise it:
 *   a client may volunteer to be sheddable, but cannot make itself critical. Raising needs
 *   a caller mapping, because the header is whatever the client sends.
 *
 * Sets `ctx.priority`; never rejects. Queues (critical ahead) and shedding (sheddable first)
 * read it. Runs after auth, which sets the principal.
 */
export const priorityFactory: PolicyFactory = {
  type: 'priority',
  stage: 'endpoint',
  create(scope) {
    const cfg = scope.endpointConfig.priority;
    if (!cfg) return undefined;
    const header = cfg.header;
    const base = RANK[cfg.default];
    const callers = new Map<string, number>(Object.entries(cfg.callers).map(([k, v]) => [k, RANK[v]]));
    return {
      name: `${scope.endpoint}.priority`,
      evaluate(ctx: PolicyContext): Verdict {
        let rank = base;
        const p = ctx.principal;
        if (p && callers.size) {
          let best = callers.get(p.id);
          for (const r of p.roles ?? []) {
            const c = callers.get(r);
            if (c !== undefined && (best === undefined || c > best)) best = c;
          }
          if (best !== undefined) rank = best;
        }
        const asked = headerClass(ctx.headers[header]);
        if (asked !== undefined && RANK[asked] < rank) rank = RANK[asked];
        ctx.priority = BY_RANK[rank]!;
        return CONTINUE;
      },
    };
  },
};
