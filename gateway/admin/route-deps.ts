import { GatewayError } from '../errors.ts';
import type { LiveConfig } from '../live-config/live-config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import type { AdminCall } from './router.ts';

/** What the admin routes need from the gateway. */
export interface AdminRouteDeps {
  readonly snapshot: () => Snapshot;
  readonly ready: () => boolean;
  readonly draining: () => boolean;
  readonly metrics: Metrics;
  /** The Prometheus text `/metrics` answers (this process's, or every worker's aggregated). */
  readonly metricsText: () => Promise<{ readonly contentType: string; readonly text: string }>;
  readonly log: Logger;
  readonly now: () => number;
  /** The file and the API's edits together: edits, ETags, keys, audit. */
  readonly live: LiveConfig;
}

export function endpointOf(deps: AdminRouteDeps, call: AdminCall): { snap: Snapshot; name: string } {
  const snap = deps.snapshot();
  const name = call.params.name ?? '';
  if (!snap.endpoints.has(name)) throw new GatewayError('EndpointNotFound');
  return { snap, name };
}
