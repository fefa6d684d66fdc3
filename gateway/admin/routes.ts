import { GatewayError } from '../errors.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import { editRoutes } from './edit-routes.ts';
import { endpointView } from './endpoint-view.ts';
import { endpointOf, type AdminRouteDeps } from './route-deps.ts';
import type { AdminRoute } from './router.ts';

export type { AdminRouteDeps } from './route-deps.ts';

/**
 * The admin API (SPEC §5) as a table: unauthenticated probes and metrics for orchestrators
 * and scrapers, everything under /admin behind admin keys or Entra roles.
 */
export function adminRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const view = (snap: Snapshot, name: string): unknown => endpointView(snap, name, deps.now(), deps.live);
  return [
    { method: 'GET', pattern: '/healthz', auth: false, handle: () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'GET', pattern: '/readyz', auth: false, handle: () => {
        const ok = deps.ready() && !deps.draining();
        // The pid tells two processes apart during a rolling restart (both answer on the port).
        return { status: ok ? 200 : 503, body: { status: ok ? 'ready' : deps.draining() ? 'draining' : 'starting', pid: process.pid } };
      },
    },
    {
      method: 'GET', pattern: '/metrics', auth: false,
      handle: async () => {
        const m = await deps.metricsText();
        return { status: 200, body: m.text, contentType: m.contentType };
      },
    },
    {
      method: 'GET', pattern: '/admin/endpoints', auth: true, handle: () => {
        const snap = deps.snapshot();
        const views = [...snap.endpoints.keys()].map((n) => view(snap, n));
        return { status: 200, body: { version: snap.version, doc_version: deps.live.docVersion, endpoints: views }, headers: { etag: `"${snap.version}"` } };
      },
    },
    {
      method: 'GET', pattern: '/admin/endpoints/:name', auth: true, handle: (call) => {
        const { snap, name } = endpointOf(deps, call);
        return { status: 200, body: view(snap, name), headers: { etag: `"${deps.live.etag(name)}"` } };
      },
    },
    {
      // The shadow report (SPEC §5): since the mirror was set, what was mirrored and skipped,
      // how often the shadow agreed, where it differs most, latency and errors.
      method: 'GET', pattern: '/admin/endpoints/:name/mirror', auth: true, handle: (call) => {
        const { snap, name } = endpointOf(deps, call);
        const mirror = snap.endpoints.get(name)?.mirror;
        if (!mirror) throw new GatewayError('NotFound', `Endpoint ${name} has no mirror_traffic.`);
        return { status: 200, body: { ...mirror.stats.report(), in_flight: mirror.inFlight }, headers: { 'cache-control': 'no-store' } };
      },
    },
    ...editRoutes(deps, view),
  ];
}
