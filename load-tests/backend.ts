/**
 * The bench backend: a tiny keep-alive node:http server standing in for a model server.
 * Any request gets its body drained, then a fixed ~200-byte JSON answer (GET too, so that
 * readiness polls work). `x-bench-delay-ms: N` (0..1000) delays the answer by N ms; the
 * modest-load section of the bench uses it so that 10 closed-loop connections give ~1000 req/s.
 *
 *   node load-tests/backend.ts --port 5001 [--host 127.0.0.1]
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '5001' }, host: { type: 'string', default: '127.0.0.1' } },
});

const BODY = Buffer.from(JSON.stringify({
  id: 'bench-0001',
  model: 'bench-model',
  version: 3,
  predictions: [[0.12, 0.88], [0.91, 0.09], [0.33, 0.67], [0.5, 0.5]],
  labels: ['negative', 'positive'],
  latency_ms: 0.4,
  note: 'fixed answer from load-tests/backend.ts',
}));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

function answer(res: ServerResponse): void {
  res.writeHead(200, HEADERS);
  res.end(BODY);
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  const delayHeader = req.headers['x-bench-delay-ms'];
  const delay = typeof delayHeader === 'string' ? Math.min(Math.max(Number(delayHeader) || 0, 0), 1000) : 0;
  // Drain the body before answering, as a real model server would.
  req.on('data', noop);
  req.on('end', () => {
    if (delay > 0) setTimeout(answer, delay, res);
    else answer(res);
  });
  req.on('error', () => res.destroy());
}

function noop(): void {}

const server = createServer({ keepAliveTimeout: 65_000 }, onRequest);
server.headersTimeout = 66_000;
server.listen(Number(values.port), values.host, () => {
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : values.port;
  process.stdout.write(`backend listening on http://${values.host}:${port} (${BODY.length}-byte answers)\n`);
});

function stop(): void {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
