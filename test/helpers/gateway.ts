import { Writable } from 'node:stream';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { formatIssues, parseConfig } from '../../config/load.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import { Gateway, type GatewayOptions } from '../../gateway/gateway.ts';

/** Log lines a test gateway wrote, parsed. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    cb();
  }
  /** Access-log lines ("msg":"request"). */
  access(): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === 'request');
  }
}

/** Validate a config document (as a user would write it) or throw with every issue. */
export function config(doc: unknown, env: NodeJS.ProcessEnv = {}): GatewayConfig {
  const r = parseConfig(doc, env);
  if (!r.ok) throw new Error(formatIssues(r.issues));
  return r.config;
}

/** A document with listeners on loopback port 0, merged over `doc`. */
export function withTestListeners(doc: Record<string, unknown>): Record<string, unknown> {
  const server = (doc.server ?? {}) as Record<string, unknown>;
  return {
    ...doc,
    server: {
      listen: { host: '127.0.0.1', port: 0 },
      admin_listen: { host: '127.0.0.1', port: 0 },
      ...server,
    },
  };
}

export interface TestGateway {
  readonly gw: Gateway;
  readonly logs: LogCapture;
  /** Base URL of the public listener. */
  readonly url: string;
  readonly adminUrl: string;
  readonly privateUrl: string | undefined;
  close(): Promise<void>;
}

/** Start a gateway on loopback port 0 with logs captured in memory. */
export async function startGateway(doc: Record<string, unknown>, opts: Partial<GatewayOptions> = {}): Promise<TestGateway> {
  const logs = new LogCapture();
  const log = pino({ level: 'info' }, logs);
  const gw = await Gateway.start({ config: config(withTestListeners(doc)), log, ...opts });
  const a = gw.addresses;
  return {
    gw,
    logs,
    url: `http://127.0.0.1:${a.public.port}`,
    adminUrl: `http://127.0.0.1:${a.admin.port}`,
    privateUrl: a.private ? `http://${a.private.address}:${a.private.port}` : undefined,
    close: () => gw.close(),
  };
}

export interface TestUpstream {
  readonly url: string;
  readonly server: Server;
  /** Requests seen, in order. */
  readonly seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1 port 0. The default handler answers JSON naming
 * `name`; pass `handler` to do anything else (it runs after the body is read unless
 * `raw` is set).
 */
export async function startUpstream(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void,
  raw = false,
): Promise<TestUpstream> {
  const seen: TestUpstream['seen'] = [];
  const server = createServer((req, res) => {
    if (raw && handler) {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: '' });
      handler(req, res, '');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handler) return handler(req, res, body);
      const text = JSON.stringify({ deployment: name, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    seen,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/**
 * A loopback address no test listens on: a port picked free there stays dead, where one on
 * 127.0.0.1 could be taken by another test file's server running at the same time (a breaker
 * test once got an admin listener's 404 from its "dead" instance).
 */
export const DEAD_HOST = '127.0.0.254';

/** A port nothing listens on at {@link DEAD_HOST} (bind, then close): connections are refused. */
export async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, DEAD_HOST, r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A loopback port for a test that must name its port up front (a child process's config). */
export { freePort } from '../../load-tests/bench-lib.ts';

/** `http://127.0.0.254:<port>` where nothing listens: an instance whose connections are refused. */
export async function deadOrigin(): Promise<string> {
  return `http://${DEAD_HOST}:${await deadPort()}`;
}
