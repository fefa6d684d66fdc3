/**
 * A model server with a fixed number of workers, for the bench's overload section: each
 * request holds one worker for `--service-ms` (a timer, not CPU: a GPU's time is not the
 * server's CPU), and requests beyond the workers wait in the server's own unbounded FIFO,
 * as a real model server's does. So it serves at most `workers / service-ms` requests per
 * second, and past that its queue, and every caller's latency, grows without bound.
 *
 * `GET /stats` answers `{"workers","serviceMs","inFlight","maxInFlight","maxQueued","served"}`
 * without taking a worker: in-flight counts requests received and not yet answered (the
 * ones being served plus the ones queued), the figure that shows whether a gateway in front
 * kept the model within its concurrency. `GET /stats?reset=1` answers, then restarts the
 * maxima from the current counts and `served` from 0.
 *
 *   node load-tests/model-backend.ts --port 5002 [--workers 4] [--service-ms 20]
 */
import { serveBackend } from './backend-server.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '5002' },
    host: { type: 'string', default: '127.0.0.1' },
    workers: { type: 'string', default: '4' },
    'service-ms': { type: 'string', default: '20' },
  },
});
const WORKERS = Math.max(1, Number(values.workers));
const SERVICE_MS = Math.max(0, Number(values['service-ms']));

const BODY = Buffer.from(JSON.stringify({
  id: 'bench-0001',
  model: 'bench-model',
  predictions: [[0.12, 0.88], [0.91, 0.09]],
  note: 'fixed answer from load-tests/model-backend.ts',
}));
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

/** One request from arrival to answer. */
interface Job { res: ServerResponse; state: 'reading' | 'queued' | 'serving' | 'done' }

/** Requests whose body was read, waiting for a worker, oldest first (head index: no shifting). */
let queue: (Job | undefined)[] = [];
let head = 0;
let queued = 0;
let busy = 0;
let inFlight = 0;
let maxInFlight = 0;
let maxQueued = 0;
let served = 0;

function finish(job: Job): void {
  if (job.state === 'done') return;
  if (job.state === 'queued') queued--;
  job.state = 'done';
  // Counted down before the answer is written: the next request can only arrive after it.
  inFlight--;
}

function startNext(): void {
  while (busy < WORKERS && head < queue.length) {
    const job = queue[head];
    queue[head++] = undefined;
    if (!job || job.state !== 'queued') continue; // its client left while it waited
    queued--;
    job.state = 'serving';
    busy++;
    setTimeout(serveDone, SERVICE_MS, job);
  }
  if (head > 1024 && head * 2 > queue.length) {
    queue = queue.slice(head);
    head = 0;
  }
}

function serveDone(job: Job): void {
  busy--;
  finish(job);
  if (!job.res.destroyed) {
    served++;
    job.res.writeHead(200, HEADERS);
    job.res.end(BODY);
  }
  startNext();
}

function stats(req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({ workers: WORKERS, serviceMs: SERVICE_MS, inFlight, maxInFlight, maxQueued, served });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
  if (req.url?.includes('reset=1')) {
    maxInFlight = inFlight;
    maxQueued = queued;
    served = 0;
  }
}

function onRequest(req: IncomingMessage, res: ServerResponse): void {
  if (req.url?.startsWith('/stats')) {
    stats(req, res);
    return;
  }
  const job: Job = { res, state: 'reading' };
  inFlight++;
  if (inFlight > maxInFlight) maxInFlight = inFlight;
  // A client (or gateway) that goes away frees its place in the queue; a worker already on
  // it finishes anyway (and the request counts as in flight until then).
  res.on('close', () => { if (job.state !== 'serving') finish(job); });
  req.on('data', noop);
  req.on('end', () => {
    if (job.state !== 'reading') return;
    job.state = 'queued';
    queue.push(job);
    queued++;
    if (queued > maxQueued) maxQueued = queued;
    startNext();
  });
  req.on('error', () => res.destroy());
}

function noop(): void {}

serveBackend(onRequest, values.host, Number(values.port), (url) => `model backend on ${url}: ${WORKERS} workers x ${SERVICE_MS} ms`);
