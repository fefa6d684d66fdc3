import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small sample model server, shaped like the Azure ML inference server (liveness on
 * `/`, scoring on `/score`), plus an SSE route that streams tokens the way an LLM does.
 * Users point the gateway at it to try routing, splits and streaming before their own
 * model is ready.
 */
export interface ModelServerOptions {
  /** Reported in every answer, so a caller sees which deployment served it. */
  readonly name: string;
  readonly port?: number;
  readonly host?: string;
  /** Simulated inference time for /score (ms). */
  readonly latencyMs?: number;
}

export interface ModelServer {
  readonly name: string;
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

/** A toy classifier: one label and score per input row, deterministic in the input. */
function predict(name: string, input: unknown): unknown {
  const rows = Array.isArray((input as { data?: unknown })?.data) ? (input as { data: unknown[] }).data : [input];
  return rows.map((row) => {
    const s = JSON.stringify(row) ?? '';
    let h = 0;
    for (let i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) >>> 0;
    const score = (h % 1000) / 1000;
    return { label: score >= 0.5 ? 'positive' : 'negative', score, model: name };
  });
}

async function handle(opts: ModelServerOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://model');
  // Health on `/` (Azure ML's default probe path) and `/ready` (README's swap example).
  if ((url.pathname === '/' || url.pathname === '/ready') && (req.method === 'GET' || req.method === 'HEAD')) {
    return json(res, 200, { status: 'healthy', model: opts.name });
  }
  if (url.pathname === '/score') {
    const text = await readBody(req);
    let input: unknown = null;
    if (text) {
      try {
        input = JSON.parse(text);
      } catch {
        return json(res, 400, { error: 'body must be JSON', model: opts.name });
      }
    }
    if (opts.latencyMs) await new Promise((r) => setTimeout(r, opts.latencyMs));
    return json(res, 200, { deployment: opts.name, predictions: predict(opts.name, input) });
  }
  if (url.pathname === '/stream') {
    await readBody(req);
    const n = Math.min(Number(url.searchParams.get('n') ?? 5) || 5, 1000);
    const interval = Math.min(Number(url.searchParams.get('interval_ms') ?? 200) || 0, 10_000);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    for (let i = 0; i < n && !res.destroyed; i++) {
      res.write(`data: ${JSON.stringify({ model: opts.name, index: i, token: `token-${i}` })}\n\n`);
      await new Promise((r) => setTimeout(r, interval));
    }
    res.end('data: [DONE]\n\n');
    return;
  }
  if (url.pathname === '/echo') {
    // Shows what reached the model: method, path, query and headers (for trying the gateway).
    const body = await readBody(req);
    return json(res, 200, { model: opts.name, method: req.method, url: req.url, headers: req.headers, body_bytes: Buffer.byteLength(body) });
  }
  json(res, 404, { error: 'not found', model: opts.name });
}

/** Start a sample model server; port 0 picks a free port. */
export function startModelServer(opts: ModelServerOptions): Promise<ModelServer> {
  const server = createServer((req, res) => {
    handle(opts, req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'model error' });
      else res.destroy();
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      const a = server.address() as AddressInfo;
      const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      resolve({
        name: opts.name,
        url: `http://${host}:${a.port}`,
        server,
        close: () => new Promise((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}
