import { createServer, type Server } from 'node:http';
import type { GatewayConfig } from '../../config/schema.ts';
import { adminAuthPolicy } from '../../policies/auth/auth.ts';
import type { Policy, PolicyDeps } from '../../policies/policy.ts';
import { serverOptions } from '../listeners.ts';
import type { Logger } from '../logger.ts';
import type { Snapshot } from '../snapshot/compile.ts';
import { adminRouter } from './router.ts';
import { adminRoutes, type AdminRouteDeps } from './routes.ts';

/** What the admin listener needs: the routes' dependencies, and how to authenticate. */
export interface AdminServerDeps extends AdminRouteDeps {
  readonly policy: PolicyDeps;
  readonly accessLog: Logger;
}

/**
 * The admin listener's HTTP server: the route table behind the admin auth policy (compiled
 * once per snapshot, from the same code as endpoint auth). `Expect: 100-continue` is handled
 * by the router, after authentication.
 */
export function adminServer(cfg: GatewayConfig, deps: AdminServerDeps): Server {
  const auth = new WeakMap<Snapshot, Policy>();
  const route = adminRouter({
    routes: adminRoutes(deps),
    auth: () => {
      const snap = deps.snapshot();
      let p = auth.get(snap);
      if (!p) auth.set(snap, p = adminAuthPolicy(snap.config, deps.policy));
      return p;
    },
    log: deps.log,
    accessLog: deps.accessLog,
  });
  // An admin request must arrive whole within the header and body deadlines together: a
  // client that trickles a PATCH body never holds a connection for good (Node answers 408).
  const s = cfg.server;
  const options = { ...serverOptions(s.client_header_timeout_ms), requestTimeout: s.client_header_timeout_ms + s.client_body_timeout_ms };
  const server = createServer(options, (req, res) => route(req, res, false));
  server.on('checkContinue', (req, res) => route(req, res, true));
  return server;
}
