import { randomBytes } from 'node:crypto';
import { sha256 } from '../../config/key-digest.ts';
import { GatewayError } from '../errors.ts';
import type { EndpointEdit } from '../live-config/live-config.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import { redactEndpoint } from './endpoint-view.ts';
import type { AdminCall, AdminReply, AdminRoute } from './router.ts';
import { endpointOf, type AdminRouteDeps } from './route-deps.ts';

/** `?dry_run=true` (or `1`): check everything, store nothing. */
function dryRun(call: AdminCall): boolean {
  const q = new URLSearchParams((call.req.url ?? '').split('?')[1] ?? '');
  const v = q.get('dry_run');
  if (v === null || v === 'false' || v === '0') return false;
  if (v === '' || v === 'true' || v === '1') return true;
  throw new GatewayError('BadRequest', 'dry_run must be true or false.');
}

function ifMatch(call: AdminCall): string | undefined {
  const h = call.req.headers['if-match'];
  return Array.isArray(h) ? h.join(', ') : h;
}

/** `If-None-Match: *` on a PUT: create only (RFC 9110 §13.1.2). */
function createOnly(call: AdminCall): boolean {
  const h = call.req.headers['if-none-match'];
  if (h === undefined) return false;
  if (h.trim() !== '*') throw new GatewayError('BadRequest', 'If-None-Match on a write takes only *.');
  return true;
}

/**
 * The admin API's writes (SPEC §5): PUT, PATCH (RFC 7396 merge patch) and DELETE of an
 * endpoint, key regeneration, and the audit. Each goes through LiveConfig: validated like a
 * file reload, stored (compare-and-set), then applied; `If-Match` honoured; `?dry_run=true`
 * answers what would change and stores nothing.
 */
export function editRoutes(deps: AdminRouteDeps, view: (snap: Snapshot, name: string) => unknown): AdminRoute[] {
  const edit = async (call: AdminCall, make: () => Promise<EndpointEdit>): Promise<AdminReply> => {
    const name = call.params.name ?? '';
    const dry = dryRun(call);
    // While draining (a rolling restart), the process that replaces this one takes the edits.
    if (deps.draining() && !dry) throw new GatewayError('Draining', 'This gateway process is shutting down; send the edit again (the one replacing it takes it).');
    const change = await make();
    const out = await deps.live.edit({ endpoint: name, edit: change, ifMatch: ifMatch(call), createOnly: createOnly(call), dryRun: dry, who: call.who! });
    const noStore = { 'cache-control': 'no-store' };
    if (dry) {
      const redact = (c: typeof out.before) => (c ? redactEndpoint(c) : null);
      return { status: 200, body: { dry_run: true, name, before: redact(out.before), after: redact(out.after) }, headers: noStore };
    }
    if (change.kind === 'delete') return { status: 200, body: { name, deleted: true, doc_version: out.docVersion }, headers: noStore };
    return { status: out.created ? 201 : 200, body: view(deps.snapshot(), name), headers: { ...noStore, etag: `"${out.etag}"` } };
  };
  return [
    { method: 'PUT', pattern: '/admin/endpoints/:name', auth: true, handle: (call) => edit(call, async () => ({ kind: 'put', body: await call.json() })) },
    { method: 'PATCH', pattern: '/admin/endpoints/:name', auth: true, handle: (call) => edit(call, async () => ({ kind: 'patch', patch: await call.json() })) },
    { method: 'DELETE', pattern: '/admin/endpoints/:name', auth: true, handle: (call) => edit(call, () => Promise.resolve({ kind: 'delete' })) },
    {
      method: 'POST', pattern: '/admin/endpoints/:name/keys/regenerate', auth: true, handle: async (call) => {
        const { name } = endpointOf(deps, call);
        const keyType = ((await call.json()) as { key_type?: unknown } | null)?.key_type;
        if (keyType !== 'primary' && keyType !== 'secondary') {
          throw new GatewayError('BadRequest', 'key_type must be "primary" or "secondary".');
        }
        // A dry run checks the endpoint and the slot and changes nothing: no key is made.
        if (dryRun(call)) return { status: 200, body: { dry_run: true, endpoint: name, key_type: keyType }, headers: { 'cache-control': 'no-store' } };
        if (deps.draining()) throw new GatewayError('Draining', 'This gateway process is shutting down; send the request again (the one replacing it takes it).');
        const who = call.who!;
        const key = randomBytes(32).toString('base64url');
        await deps.live.regenerateKey(name, keyType, sha256(key), who);
        deps.metrics.keyRegenerations.inc({ endpoint: name, key_type: keyType });
        // The key is shown once: it is held only as a digest from here on.
        return { status: 200, body: { endpoint: name, key_type: keyType, key }, headers: { 'cache-control': 'no-store' } };
      },
    },
    {
      method: 'GET', pattern: '/admin/audit', auth: true,
      handle: () => ({ status: 200, body: { doc_version: deps.live.docVersion, entries: deps.live.audit() }, headers: { 'cache-control': 'no-store' } }),
    },
  ];
}
