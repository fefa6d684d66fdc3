import { randomBytes, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sha256, type KeySlot } from '../../policies/auth/key-digest.ts';
import type { Principal } from '../../policies/principal.ts';
import { configVersion, type Snapshot } from '../../config/compile.ts';
import { GatewayError, sendError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { AdminAuth } from './admin-auth.ts';
import { endpointView } from './endpoint-view.ts';

/** What the admin listener needs from the gateway. */
export interface AdminDeps {
  readonly snapshot: () => Snapshot;
  readonly ready: () => boolean;
  readonly draining: () => boolean;
  readonly metrics: Metrics;
  readonly auth: () => AdminAuth;
  readonly log: Logger;
  readonly now: () => number;
  /** Persist a regenerated key digest and make it effective (recompile). */
  readonly regenerateKey: (endpoint: string, slot: KeySlot, digest: Buffer, by: Principal) => Promise<void>;
}

const MAX_ADMIN_BODY = 1_048_576;

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_ADMIN_BODY) throw new GatewayError('PayloadTooLarge');
    chunks.push(c);
  }
  try {
    return chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
  } catch {
    throw new GatewayError('BadRequest', 'The body is not valid JSON.');
  }
}

/**
 * The admin listener (SPEC §5): unauthenticated /healthz, /readyz and /metrics for
 * probes and scrapers; /admin/* behind admin keys or Entra roles. It never serves
 * invocation traffic.
 */
export function adminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    handle(deps, req, res).catch((err: unknown) => {
      const e = err instanceof GatewayError ? err : new GatewayError('InternalError');
      if (!(err instanceof GatewayError)) deps.log.error({ err }, 'admin request failed');
      sendError(res, e, randomUUID());
    });
  };
}

async function handle(deps: AdminDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  const method = req.method ?? 'GET';
  if (path === '/healthz') return json(res, 200, { status: 'ok' });
  if (path === '/readyz') {
    const ok = deps.ready() && !deps.draining();
    return json(res, ok ? 200 : 503, { status: ok ? 'ready' : deps.draining() ? 'draining' : 'starting' });
  }
  if (path === '/metrics') {
    const text = await deps.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
    res.end(text);
    return;
  }
  if (!path.startsWith('/admin/')) throw new GatewayError('NotFound');

  const who = await deps.auth().check(req);
  if (who instanceof GatewayError) throw who;
  const parts = path.split('/').filter(Boolean); // ['admin', 'endpoints', name?, ...]
  if (parts[1] !== 'endpoints') throw new GatewayError('NotFound');
  const snap = deps.snapshot();
  const name = parts[2];

  if (parts.length === 2) {
    if (method !== 'GET') throw new GatewayError('MethodNotAllowed', undefined, { allow: 'GET' });
    const views = [...snap.endpoints.keys()].map((n) => endpointView(snap, n, deps.now()));
    return json(res, 200, { version: snap.version, endpoints: views }, { etag: `"${snap.version}"` });
  }
  if (!name || !snap.endpoints.has(name)) throw new GatewayError('EndpointNotFound');
  if (parts.length === 3 && method === 'GET') {
    const view = endpointView(snap, name, deps.now());
    const cfg = snap.config.endpoints[name];
    return json(res, 200, view, { etag: `"${configVersion(cfg)}"` });
  }
  if (parts.length === 5 && parts[3] === 'keys' && parts[4] === 'regenerate' && method === 'POST') {
    const body = await readJson(req);
    const keyType = (body as { key_type?: unknown } | null)?.key_type;
    if (keyType !== 'primary' && keyType !== 'secondary') {
      throw new GatewayError('BadRequest', 'key_type must be "primary" or "secondary".');
    }
    const key = randomBytes(32).toString('base64url');
    await deps.regenerateKey(name, keyType, sha256(key), who);
    deps.metrics.keyRegenerations.inc({ endpoint: name, key_type: keyType });
    deps.log.info({ endpoint: name, key_type: keyType, by: who.id, by_type: who.type }, 'endpoint key regenerated');
    // The key is shown once: it is held only as a digest from here on.
    return json(res, 200, { endpoint: name, key_type: keyType, key }, { 'cache-control': 'no-store' });
  }
  // RFC 9110 §15.5.6: a 405 says which methods the resource does support.
  if (parts.length === 3) throw new GatewayError('MethodNotAllowed', 'This version serves GET on an endpoint (PUT, PATCH and DELETE are not available yet).', { allow: 'GET' });
  if (parts.length === 5 && parts[3] === 'keys' && parts[4] === 'regenerate') throw new GatewayError('MethodNotAllowed', undefined, { allow: 'POST' });
  throw new GatewayError('NotFound');
}
