import type { GatewayConfig } from '../../config/schema.ts';
import type { SharedLimits } from '../../policies/policy.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';

/**
 * The one owner of the shared-state connection (Redis, `state.redis_url`): limits and, later,
 * live config use it. Undefined without `state.redis_url`: state is in-process.
 */
export interface SharedState extends SharedLimits {
  close(): Promise<void>;
}

export interface SharedStateOptions {
  readonly log: Logger;
  readonly metrics: Metrics;
}

/** Connect to the configured shared state, or nothing when the config has none. */
export function createSharedState(cfg: GatewayConfig, opts: SharedStateOptions): SharedState | undefined {
  void opts;
  if (!cfg.state?.redis_url) return undefined;
  return undefined;
}
