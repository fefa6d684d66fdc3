import type { Policy } from '../../policies/policy.ts';
import type { OutlierDetector } from '../health/outlier.ts';
import type { Instance } from '../upstream/instance.ts';

/** A deployment as the request path needs it. */
export interface CompiledDeployment {
  readonly name: string;
  readonly instances: readonly Instance[];
  readonly scoringRoute: string;
  readonly timeoutMs: number;
  /** Deployment-stage policies, in order (empty when none applies). */
  readonly policies: readonly Policy[];
  /** Passive outlier detection, when the deployment asks for it. */
  readonly outlier: OutlierDetector | undefined;
  /** `max_queue_wait_ms`: how long a request may wait for a ready instance (or a slot). */
  readonly queueWaitMs: number;
  /** `max_concurrent_requests_per_instance`. */
  readonly concurrencyPerInstance: number;
}

/** One of `instances` takes traffic at `now` (stops at the first: one check when healthy). */
export function hasReadyInstance(d: CompiledDeployment, now: number): boolean {
  for (const i of d.instances) if (i.takesTraffic(now)) return true;
  return false;
}
