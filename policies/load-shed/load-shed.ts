import { GatewayError } from '../../gateway/errors.ts';
import { CONTINUE, reject, type PolicyContext, type PolicyFactory, type PriorityClass, type Verdict } from '../policy.ts';
import { EventLoopDelay, LOOP_DELAY_KEY, type LoopDelay } from './loop-delay.ts';

/**
 * How far past `max_event_loop_delay_ms` each class is still served: sheddable requests are
 * refused from half the threshold, standard ones from the threshold, critical ones only from
 * twice it. "Sheddable first" (SPEC §2) as a ladder, so the gateway sheds the least
 * important work before the rest slows down.
 */
export const SHED_AT: Readonly<Record<PriorityClass, number>> = { sheddable: 0.5, standard: 1, critical: 2 };

/**
 * Load shedding (SPEC `server.load_shedding`): when the gateway's own event loop lags past
 * the threshold, new requests get 503 `Overloaded` at once, instead of every request
 * getting slow. Reads one number per request; the monitor samples in the background.
 * Endpoint stage, after priority (so the class is known) and before the rate limit (a shed
 * request spends no tokens).
 */
export const loadShedFactory: PolicyFactory = {
  type: 'load-shed',
  stage: 'endpoint',
  create(scope, deps) {
    const cfg = scope.gateway.server.load_shedding;
    if (!cfg) return undefined;
    const loop = deps.state.get<LoopDelay>(LOOP_DELAY_KEY, () => new EventLoopDelay());
    const max = cfg.max_event_loop_delay_ms;
    const sheddable = max * SHED_AT.sheddable;
    const standard = max * SHED_AT.standard;
    const critical = max * SHED_AT.critical;
    const OVERLOADED = reject(new GatewayError('Overloaded'), 'overloaded');
    return {
      name: `${scope.endpoint}.load-shed`,
      evaluate(ctx: PolicyContext): Verdict {
        const d = loop.delayMs;
        if (d <= sheddable) return CONTINUE;
        const p = ctx.priority;
        if (p === 'sheddable' || (p === 'standard' ? d > standard : d > critical)) return OVERLOADED;
        return CONTINUE;
      },
    };
  },
};
