import type { HealthView } from '../../policies/policy.ts';
import type { Clock } from '../clock.ts';
import type { Metrics } from '../metrics.ts';
import type { Snapshot } from '../snapshot/compile.ts';

/** What the policies see of health: ready instances of a deployment in the snapshot in force. */
export function healthView(current: () => Snapshot, clock: Clock): HealthView {
  return {
    readyInstances(endpoint, deployment) {
      const d = current().endpoints.get(endpoint)?.deployments.get(deployment);
      if (!d) return 0;
      const now = clock();
      let n = 0;
      for (const i of d.instances) if (i.takesTraffic(now)) n++;
      return n;
    },
  };
}

/**
 * `switchyard_instance_ready` for every instance of the snapshot (1 = takes traffic).
 * Series of instances no longer configured are dropped.
 */
export function publishInstanceReady(metrics: Metrics, snap: Snapshot, now: number): void {
  const g = metrics.instanceReady;
  g.reset();
  for (const ep of snap.endpoints.values()) {
    for (const d of ep.deployments.values()) {
      for (const i of d.instances) g.set({ endpoint: ep.name, deployment: d.name, instance: i.origin }, i.takesTraffic(now) ? 1 : 0);
    }
  }
}
