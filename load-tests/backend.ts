/**
 * The bench backend: a tiny keep-alive node:http server standing in for a model server.
 * Any request gets its body drained, then a fixed ~200-byte JSON answer (GET too, so that
 * readiness polls work). `x-bench-delay-ms: N` (0..1000) delays the answer by N ms; the
 * modest-load section of the bench uses it so that 10 closed-loop connections give ~1000 req/s.
 *
 *   node load-tests/backend.ts --port 5001 [--host 127.0.0.1]
 */
import { serveBackend } from './backend-server.ts';
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

serveBackend(onRequest, values.host, Number(values.port), (url) => `backend listening on ${url} (${BODY.length}-byte answers)`);
