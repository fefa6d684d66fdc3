import type { Snapshot } from '../snapshot/compile.ts';
import type { EndpointConfig } from '../../config/schema.ts';
import { ENDPOINT_KEYS } from '../../config/warnings.ts';

/** An endpoint's config with secrets redacted: key values become `"<redacted>"` (presence only). */
export function redactEndpoint(ep: EndpointConfig): EndpointConfig {
  if (!ep.keys) return ep;
  return {
    ...ep,
    keys: {
      ...(ep.keys.primary !== undefined ? { primary: '<redacted>' } : {}),
      ...(ep.keys.secondary !== undefined ? { secondary: '<redacted>' } : {}),
    },
  };
}

/**
 * Settings of an endpoint's config this version accepts but does not enforce yet (they arrive
 * with their own issues). Defaults fill some of them in, so the view says which, rather than
 * showing a queue limit as if it were active.
 */
function notEnforced(cfg: EndpointConfig): string[] {
  const out: string[] = [];
  // The same lists the loader warns from. A section the config holds is listed when it says
  // something (an empty `mirror_traffic: {}` does not).
  for (const k of ENDPOINT_KEYS) {
    const v = cfg[k] as unknown;
    if (typeof v === 'object' && v !== null && Object.keys(v).length > 0) out.push(k);
  }
  return out;
}

/** Config plus the live state of every instance (SPEC §5). */
export function endpointView(snap: Snapshot, name: string, now: number): unknown {
  const cfg = snap.config.endpoints[name];
  const compiled = snap.endpoints.get(name);
  if (!cfg || !compiled) return undefined;
  const deployments: Record<string, unknown> = {};
  for (const [dname, d] of compiled.deployments) {
    deployments[dname] = {
      instances: d.instances.map((i) => {
        const h = i.health;
        const probe = h.lastProbe;
        return {
          url: i.origin,
          ready: h.ready,
          ejected: h.ejected(now),
          ejected_until: h.ejected(now) ? new Date(h.ejectedUntil).toISOString() : null,
          in_flight: i.inFlight,
          last_probe: probe
            ? { ok: probe.ok, at: new Date(probe.at).toISOString(), ...(probe.status !== undefined ? { status: probe.status } : {}), ...(probe.error ? { error: probe.error } : {}) }
            : null,
        };
      }),
    };
  }
  return { name, config: redactEndpoint(cfg), not_enforced_by_this_version: notEnforced(cfg), state: { deployments } };
}
