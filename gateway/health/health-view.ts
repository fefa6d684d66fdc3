import type { HealthView } from '../../policies/policy.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { hasReadyInstance, type HealthEvents, type Snapshot } from '../snapshot/compile.ts';
import type { HealthRegistry } from './health-registry.ts';

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
 * `switchyard_instance_ready` for every instance of the snapshot in force (1 = takes
 * traffic), read at scrape time, so it follows every probe result and ejection.
 */
export function publishInstanceReady(metrics: Metrics, current: () => Snapshot, clock: Clock): void {
  const g = metrics.instanceReady;
  metrics.readInstanceReady(() => {
    g.reset();
    const now = clock();
    for (const ep of current().endpoints.values()) {
      for (const d of ep.deployments.values()) {
        for (const i of d.instances) g.set({ endpoint: ep.name, deployment: d.name, instance: i.origin }, i.takesTraffic(now) ? 1 : 0);
      }
    }
  });
}

/**
 * Ejections and spills, counted and logged: each ejection once; a spill once when a
 * deployment's share starts going elsewhere and once when it stops (its instances are
 * ready again), not once per request.
 */
export function healthEvents(metrics: Metrics, log: Logger, health: HealthRegistry, current: () => Snapshot, clock: Clock): HealthEvents {
  /** `endpoint\0deployment` of deployments whose share is spilling now. */
  const spilling = new Set<string>();
  health.listen(() => {
    if (spilling.size === 0) return;
    const snap = current();
    const now = clock();
    for (const key of spilling) {
      const [endpoint, deployment] = key.split('\0') as [string, string];
      const d = snap.endpoints.get(endpoint)?.deployments.get(deployment);
      if (d && !hasReadyInstance(d, now)) continue;
      spilling.delete(key);
      log.info({ endpoint, deployment }, 'deployment has a ready instance again: its traffic share is back');
    }
  });
  return {
    ejected(endpoint, deployment, h, ms, timesEjected) {
      metrics.ejections.inc({ endpoint, deployment, instance: h.origin });
      log.warn({ endpoint, deployment, instance: h.origin, ejected_ms: ms, times_ejected: timesEjected }, 'instance ejected after consecutive failures');
    },
    spilled(endpoint, from, to) {
      metrics.spills.inc({ endpoint, from, to });
      const key = `${endpoint}\0${from}`;
      if (spilling.has(key)) return;
      spilling.add(key);
      log.warn({ endpoint, deployment: from }, 'deployment has no ready instance: its traffic share spills to the other deployments');
    },
  };
}
