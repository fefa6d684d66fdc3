import { randomBytes } from 'node:crypto';
import { sha256, type KeySlot } from '../../config/key-digest.ts';
import type { Principal } from '../../policies/principal.ts';
import { GatewayError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { configVersion, type Snapshot } from '../snapshot/compile.ts';
import { endpointView } from './endpoint-view.ts';
import type { AdminCall, AdminReply, AdminRoute } from './router.ts';

/** What the admin routes need from the gateway. */
export interface AdminRouteDeps {
  readonly snapshot: () => Snapshot;
  readonly ready: () => boolean;
  readonly draining: () => boolean;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now: () => number;
  /** Persist a regenerated key digest and make it effective (recompile). */
  readonly regenerateKey: (endpoint: string, slot: KeySlot, digest: Buffer, by: Principal) => Promise<void>;
}

const NOT_YET = new GatewayError('MethodNotAllowed',
  'This version serves GET on an endpoint (PUT, PATCH and DELETE are not available yet).', { allow: 'GET, HEAD' });

function endpointOf(deps: AdminRouteDeps, call: AdminCall): { snap: Snapshot; name: string } {
  const snap = deps.snapshot();
  const name = call.params.name ?? '';
  if (!snap.endpoints.has(name)) throw new GatewayError('EndpointNotFound');
  return { snap, name };
}

/**
 * The admin API (SPEC §5) as a table: unauthenticated probes and metrics for orchestrators
 * and scrapers, everything under /admin behind admin keys or Entra roles.
 */
export function adminRoutes(deps: AdminRouteDeps): AdminRoute[] {
  const notYet = (): AdminReply => { throw NOT_YET; };
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
      handle: async () => ({ status: 200, body: await deps.metrics.registry.metrics(), contentType: deps.metrics.registry.contentType }),
    },
    {
      method: 'GET', pattern: '/admin/endpoints', auth: true, handle: () => {
        const snap = deps.snapshot();
        const views = [...snap.endpoints.keys()].map((n) => endpointView(snap, n, deps.now()));
        return { status: 200, body: { version: snap.version, endpoints: views }, headers: { etag: `"${snap.version}"` } };
      },
    },
    {
      method: 'GET', pattern: '/admin/endpoints/:name', auth: true, handle: (call) => {
        const { snap, name } = endpointOf(deps, call);
        return { status: 200, body: endpointView(snap, name, deps.now()), headers: { etag: `"${configVersion(snap.config.endpoints[name])}"` } };
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
    { method: 'PUT', pattern: '/admin/endpoints/:name', auth: true, handle: notYet },
    { method: 'PATCH', pattern: '/admin/endpoints/:name', auth: true, handle: notYet },
    { method: 'DELETE', pattern: '/admin/endpoints/:name', auth: true, handle: notYet },
    {
      method: 'POST', pattern: '/admin/endpoints/:name/keys/regenerate', auth: true, handle: async (call) => {
        const { name } = endpointOf(deps, call);
        const keyType = ((await call.json()) as { key_type?: unknown } | null)?.key_type;
        if (keyType !== 'primary' && keyType !== 'secondary') {
          throw new GatewayError('BadRequest', 'key_type must be "primary" or "secondary".');
        }
        const who = call.who!;
        const key = randomBytes(32).toString('base64url');
        await deps.regenerateKey(name, keyType, sha256(key), who);
        deps.metrics.keyRegenerations.inc({ endpoint: name, key_type: keyType });
        deps.log.info({ endpoint: name, key_type: keyType, by: who.id, by_type: who.type }, 'endpoint key regenerated');
        // The key is shown once: it is held only as a digest from here on.
        return { status: 200, body: { endpoint: name, key_type: keyType, key }, headers: { 'cache-control': 'no-store' } };
      },
    },
  ];
}
