import type { LiveConfig } from '../live-config/live-config.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import type { EndpointConfig } from '../../config/schema.ts';

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

/** Config plus the live state of every instance (SPEC §5), its ETag and where it comes from (file or API). */
export function endpointView(snap: Snapshot, name: string, now: number, live: Pick<LiveConfig, 'etag' | 'source'>): unknown {
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
  return { name, etag: live.etag(name), source: live.source(name), config: redactEndpoint(cfg), state: { deployments } };
}
