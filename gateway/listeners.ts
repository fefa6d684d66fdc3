import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { Server as NetServer, connect, type AddressInfo } from 'node:net';
import type { GatewayConfig } from '../config/schema.ts';
import type { ListenerKind } from '../policies/policy.ts';
import type { Logger } from './logger.ts';
import { ClientErrors, type ClientErrorDeps } from './client-errors.ts';
import { IDLE_SINCE, idleFor, type Connection } from './connection.ts';
import { performance } from 'node:perf_hooks';

/** During a drain, a connection idle this long is closed (a busy one closes after its response). */
export const DRAIN_IDLE_CLOSE_MS = 1000;

/**
 * Where to bind. `reusePort` (on by default for invocation listeners) lets another process
 * bind the same port: a new gateway starts beside the old one, which then drains (a rolling
 * restart), and worker processes share one port (Linux).
 */
export interface ListenSpec {
  readonly host: string;
  readonly port: number;
  readonly reusePort?: boolean;
}

/** What serves a request on an invocation listener. */
export type ServeFn = (req: IncomingMessage, res: ServerResponse, listener: ListenerKind, expectContinue: boolean) => void;

/** Bound addresses, for printing and for tests that listen on port 0. */
export interface GatewayAddresses {
  readonly public: AddressInfo;
  readonly private: AddressInfo | undefined;
  readonly admin: AddressInfo;
}

/**
 * Something accepts connections at `at` already (a gateway bound with reusePort would
 * otherwise be joined silently): a connect that succeeds within 200 ms says so.
 */
export function portInUse(at: ListenSpec): Promise<boolean> {
  if (at.port === 0) return Promise.resolve(false);
  const host = at.host === '0.0.0.0' ? '127.0.0.1' : at.host === '::' ? '::1' : at.host;
  return new Promise((resolve) => {
    const s = connect({ host, port: at.port, timeout: 200 });
    const done = (inUse: boolean): void => {
      s.destroy();
      resolve(inUse);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.once('timeout', () => done(false));
  });
}

/** Bind `server`; rejects with the listen error (EADDRINUSE names the address). */
export function listen(server: Server, at: ListenSpec): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: at.port, host: at.host, reusePort: at.reusePort ?? false }, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/**
 * Node's own server options for a client header deadline (`client_header_timeout_ms`).
 * The whole-request timer is off (`requestTimeout: 0`): a large upload may take long, and
 * the gateway bounds a stalled body itself (`client_body_timeout_ms`). Node checks the
 * header deadline on an interval, so the interval follows the deadline.
 */
export function serverOptions(headerTimeoutMs: number): ServerOptions {
  return {
    keepAliveTimeout: 65_000,
    headersTimeout: headerTimeoutMs,
    requestTimeout: 0,
    connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(headerTimeoutMs / 4))),
  };
}

/** An HTTP server for invocation traffic on one listener. */
export function invocationServer(kind: ListenerKind, serve: ServeFn, headerTimeoutMs: number): Server {
  const server = createServer(serverOptions(headerTimeoutMs), (req, res) => serve(req, res, kind, false));
  // Without this listener Node answers 100 Continue before the gateway has looked at the
  // request; with it, the walk invites the upload only once it accepts the request.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => serve(req, res, kind, true));
  return server;
}

/** The process's listeners: public, optional private, admin. */
export class Listeners {
  readonly #servers: { kind: ListenerKind | 'admin'; server: Server }[] = [];
  /** Open client connections on the invocation listeners. */
  readonly #connections = new Set<Connection>();
  #idleCloser: NodeJS.Timeout | undefined;
  /** Rejections Node makes itself (parse errors, 408, 417, 431), on every listener. */
  readonly #clientErrors = new ClientErrors();

  /** Count (`switchyard_client_errors_total`) and log client errors from here on. */
  reportTo(deps: ClientErrorDeps): void {
    this.#clientErrors.reportTo(deps);
  }

  /**
   * Bind every listener, in order; on failure the ones already bound are closed by
   * {@link closeAll}. Unless `replace` (a rolling restart beside a running gateway), a port
   * something already listens on is EADDRINUSE, as without reusePort.
   */
  async bind(specs: { kind: ListenerKind | 'admin'; server: Server; at: ListenSpec }[], replace = false): Promise<AddressInfo[]> {
    const out: AddressInfo[] = [];
    for (const s of specs) {
      if (!replace && s.at.reusePort && await portInUse(s.at)) {
        throw Object.assign(new Error(`listen EADDRINUSE: address already in use ${s.at.host}:${s.at.port}`), { code: 'EADDRINUSE', address: s.at.host, port: s.at.port });
      }
      this.#clientErrors.attach(s.server, s.kind);
      if (s.kind !== 'admin') {
        s.server.on('connection', (c: Connection) => {
          c[IDLE_SINCE] = performance.now();
          this.#connections.add(c);
          c.once('close', () => this.#connections.delete(c));
        });
      }
      this.#servers.push({ kind: s.kind, server: s.server });
      out.push(await listen(s.server, s.at));
    }
    return out;
  }

  /**
   * A new config is in force: `client_header_timeout_ms` applies to requests from now on;
   * listener addresses change only on a restart (said once per change).
   */
  configChanged(next: GatewayConfig['server'], prev: GatewayConfig['server'], log: Logger): void {
    for (const { server } of this.#servers) server.headersTimeout = next.client_header_timeout_ms;
    for (const k of ['listen', 'private_listen', 'admin_listen'] as const) {
      if (JSON.stringify(prev[k]) !== JSON.stringify(next[k])) log.warn({ field: `server.${k}` }, 'listener addresses change only on restart');
    }
  }

  /**
   * Stop accepting invocations. Open connections are not cut: each request still arriving
   * on one is served and its response closes it; a connection idle for
   * {@link DRAIN_IDLE_CLOSE_MS} is closed. Closing every idle connection at once would race
   * a client that is sending its next request on it right then (it would see a reset).
   */
  stopInvocations(): void {
    // net.Server's close, not http.Server's: the latter also closes every idle connection
    // at once (Node ≥ 19), which is the race this avoids. Header deadlines keep running.
    for (const { kind, server } of this.#servers) if (kind !== 'admin') NetServer.prototype.close.call(server);
    const closeIdle = (): void => {
      const now = performance.now();
      for (const c of this.#connections) if (idleFor(c, DRAIN_IDLE_CLOSE_MS, now)) c.destroy();
    };
    closeIdle();
    this.#idleCloser = setInterval(closeIdle, 100);
    this.#idleCloser.unref();
  }

  /** Client connections still open on the invocation listeners. */
  get openConnections(): number {
    return this.#connections.size;
  }

  /** Close every listener and connection at once. */
  closeAll(): void {
    if (this.#idleCloser) clearInterval(this.#idleCloser);
    for (const { server } of this.#servers) {
      server.close();
      server.closeAllConnections();
    }
  }
}
