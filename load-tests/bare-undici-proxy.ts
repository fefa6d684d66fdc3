/**
 * The floor Switchyard is measured against: a bare reverse proxy with no features — a
 * node:http server and one keep-alive undici Pool, bodies streamed both ways with
 * `pool.stream()` (the response goes straight into the ServerResponse). Only what HTTP
 * correctness needs: hop-by-hop headers dropped, upstream aborted when the client goes away
 * (leaking pool connections otherwise, see shared/research/proxy-baseline.md), 502 on failure.
 *
 *   node load-tests/bare-undici-proxy.ts --port 8081 --target http://127.0.0.1:5001
 */
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8081' },
    host: { type: 'string', default: '127.0.0.1' },
    target: { type: 'string', default: 'http://127.0.0.1:5001' },
    connections: { type: 'string', default: '128' },
  },
});

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'proxy-authorization', 'proxy-authenticate', 'host', 'expect',
]);

function strip(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  }
  return out;
}

const pool = new Pool(values.target, {
  connections: Number(values.connections),
  pipelining: 1,
  keepAliveTimeout: 30_000,
});

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const ac = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) ac.abort();
  });
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.stream(
    {
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: strip(req.headers) as Record<string, string | string[]>,
      body: hasBody ? req : null,
      signal: ac.signal,
    },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, strip(headers));
      return res;
    },
    (err) => {
      if (err === null) return;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":{"code":"BadGateway"}}');
      } else {
        res.destroy(err);
      }
    },
  );
}

const server = createServer({ keepAliveTimeout: 65_000 }, onRequest);
server.headersTimeout = 66_000;
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`bare undici proxy on http://${values.host}:${values.port} -> ${values.target}\n`);
});

function stop(): void {
  server.close();
  server.closeAllConnections();
  pool.destroy().then(() => process.exit(0), () => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
