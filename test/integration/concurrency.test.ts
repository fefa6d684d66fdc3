import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { startGateway, type TestGateway } from '../helpers/gateway.ts';
import { assertGatewayError, bearer, call, waitFor, type Reply } from '../helpers/http.ts';

// A model server with a fixed number of workers: it holds every request until the test
// releases it, and records the most requests it ever had at once. The gateway must never
// let more in than the deployment's concurrency.

interface Held { readonly tag: string; readonly res: ServerResponse }

interface SlowModel {
  readonly url: string;
  /** Requests being processed now, oldest first. */
  readonly active: Held[];
  /** Tags of every request that reached the model, in arrival order. */
  readonly seen: string[];
  /** The most requests the model ever had at once. */
  max: number;
  /** Answer the oldest request being processed. */
  releaseOne(): void;
  close(): Promise<void>;
}

async function slowModel(): Promise<SlowModel> {
  const m: SlowModel = {
    url: '',
    active: [],
    seen: [],
    max: 0,
    releaseOne() {
      const h = m.active.shift();
      assert.ok(h, 'a request to release');
      h.res.writeHead(200, { 'content-type': 'application/json' });
      h.res.end(JSON.stringify({ tag: h.tag }));
    },
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const tag = String(req.headers['x-tag'] ?? '');
      m.seen.push(tag);
      m.active.push({ tag, res });
      m.max = Math.max(m.max, m.active.length);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  (m as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return m;
}

const KEY = 'concurrency-key-primary';
const KEY2 = 'concurrency-key-secondary';
const models: Record<string, SlowModel> = {};
let gw: TestGateway;

const ready = (async () => {
  for (const name of ['fill', 'wait', 'gone', 'prio']) models[name] = await slowModel();
  const ep = (name: string, settings: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    keys: { primary: KEY, secondary: KEY2 },
    traffic: { blue: 100 },
    deployments: { blue: { instances: [models[name]!.url], request_settings: { request_timeout_ms: 60_000, ...settings } } },
    ...extra,
  });
  gw = await startGateway({
    endpoints: {
      fill: ep('fill', { max_concurrent_requests_per_instance: 2, max_queue_wait_ms: 30_000 }),
      wait: ep('wait', { max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 50 }),
      gone: ep('gone', { max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 30_000 }),
      prio: ep('prio', { max_concurrent_requests_per_instance: 2, max_queue_wait_ms: 30_000 }, {
        priority: { callers: { primary: 'critical', secondary: 'standard' } },
      }),
    },
  });
})();

after(async () => {
  await gw?.close();
  for (const m of Object.values(models)) await m.close();
});

const score = (endpoint: string, tag: string, key = KEY): Promise<Reply> =>
  call(`${gw.url}/endpoints/${endpoint}/score`, { body: '{}', headers: { ...bearer(key), 'x-tag': tag } });

/** A gauge or counter sample from /metrics (0 when absent). */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const r = await call(`${gw.adminUrl}/metrics`);
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of r.body.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const queueLength = (endpoint: string): Promise<number> =>
  metric('switchyard_deployment_queue_length', { endpoint, deployment: 'blue' });

test('the model never sees more than its concurrency; a full queue answers 429 TooManyPendingRequests with Retry-After', async () => {
  await ready;
  const m = models.fill!;
  // 2 in flight, 2 queued (as many again), then the queue is full.
  const admitted = [score('fill', 'a1'), score('fill', 'a2')];
  await waitFor(() => m.active.length === 2, 'two requests at the model');
  const waiting = [score('fill', 'q1'), score('fill', 'q2')];
  await waitFor(async () => (await queueLength('fill')) === 2, 'two requests queued');
  assert.equal(await metric('switchyard_deployment_in_flight', { endpoint: 'fill', deployment: 'blue' }), 2);

  const refused = await score('fill', 'over');
  assertGatewayError(refused, 429, 'TooManyPendingRequests');
  assert.match(refused.json<{ error: { message: string } }>().error.message, /Too many pending requests/);
  assert.equal(refused.headers['retry-after'], '30', 'max_queue_wait_ms in whole seconds');
  assert.equal(refused.headers['azureml-model-deployment'], 'blue');

  // Each freed slot goes straight to the oldest waiter: the model is never idle, never over 2.
  m.releaseOne();
  await waitFor(() => m.seen.length === 3, 'the first waiter at the model');
  m.releaseOne();
  await waitFor(() => m.seen.length === 4, 'the second waiter at the model');
  while (m.active.length > 0) m.releaseOne();
  const replies = await Promise.all([...admitted, ...waiting]);
  assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
  assert.deepEqual(m.seen, ['a1', 'a2', 'q1', 'q2'], 'FIFO; the refused request never reached the model');
  assert.equal(m.max, 2, 'the model never had more than its concurrency');

  await waitFor(() => gw.logs.access().some((l) => l.throttle === 'queue_full'), 'the access line');
  const line = gw.logs.access().find((l) => l.throttle === 'queue_full')!;
  assert.equal(line.status, 429);
  assert.equal(await metric('switchyard_throttled_total', { endpoint: 'fill', reason: 'queue_full' }), 1);
  assert.equal(await metric('switchyard_deployment_in_flight', { endpoint: 'fill', deployment: 'blue' }), 0);
});

test('a request queued past max_queue_wait_ms gets 429 queue_timeout and never reaches the model', async () => {
  await ready;
  const m = models.wait!;
  const busy = score('wait', 'busy');
  await waitFor(() => m.active.length === 1, 'the slot taken');
  const late = await score('wait', 'late');
  assertGatewayError(late, 429, 'TooManyPendingRequests');
  assert.equal(late.headers['retry-after'], '1');
  m.releaseOne();
  assert.equal((await busy).status, 200);
  assert.deepEqual(m.seen, ['busy']);
  assert.equal(await metric('switchyard_throttled_total', { endpoint: 'wait', reason: 'queue_timeout' }), 1);
});

test('a client that disconnects while queued leaves the queue at once and never reaches the model', async () => {
  await ready;
  const m = models.gone!;
  const busy = score('gone', 'busy');
  await waitFor(() => m.active.length === 1, 'the slot taken');
  // A client that queues, then hangs up.
  const req = httpRequest(`${gw.url}/endpoints/gone/score`, {
    method: 'POST',
    agent: false,
    headers: { ...bearer(KEY), 'x-tag': 'quitter', 'content-type': 'application/json' },
  });
  req.on('error', () => { /* we hang up ourselves */ });
  req.end('{}');
  await waitFor(async () => (await queueLength('gone')) === 1, 'the request queued');
  req.destroy();
  await waitFor(async () => (await queueLength('gone')) === 0, 'the queue emptied on disconnect');
  // The next request queues and gets the slot when it frees: the quitter is not in its way.
  const next = score('gone', 'next');
  await waitFor(async () => (await queueLength('gone')) === 1, 'the next request queued');
  m.releaseOne();
  await waitFor(() => m.active.length === 1, 'the waiter at the model');
  m.releaseOne();
  assert.equal((await busy).status, 200);
  assert.equal((await next).status, 200);
  assert.deepEqual(m.seen, ['busy', 'next'], 'the disconnected request never reached the model');
  await waitFor(() => gw.logs.access().some((l) => l.endpoint === 'gone' && l.status === 499), 'its access line');
  const line = gw.logs.access().find((l) => l.endpoint === 'gone' && l.status === 499)!;
  assert.equal(line.termination, 'client_aborted');
  assert.equal(await metric('switchyard_deployment_in_flight', { endpoint: 'gone', deployment: 'blue' }), 0);
  assert.deepEqual(gw.logs.lines.filter((l) => Number(l.level) >= 40), [], 'nothing went wrong answering a gone client');
});

test('when a slot frees, a queued critical request goes before standard ones that queued earlier', async () => {
  await ready;
  const m = models.prio!;
  const busy = [score('prio', 'busy1', KEY2), score('prio', 'busy2', KEY2)];
  await waitFor(() => m.active.length === 2, 'the slots taken');
  const standard = score('prio', 'standard', KEY2);
  await waitFor(async () => (await queueLength('prio')) === 1, 'the standard request queued');
  const critical = score('prio', 'critical', KEY);
  await waitFor(async () => (await queueLength('prio')) === 2, 'the critical request queued');
  m.releaseOne();
  await waitFor(() => m.seen.length === 3, 'the next request at the model');
  assert.equal(m.seen[2], 'critical');
  m.releaseOne();
  await waitFor(() => m.seen.length === 4, 'the standard request at the model');
  m.releaseOne();
  m.releaseOne();
  assert.deepEqual((await Promise.all([...busy, critical, standard])).map((r) => r.status), [200, 200, 200, 200]);
  assert.deepEqual(m.seen.slice(2), ['critical', 'standard']);
  assert.equal(m.max, 2);
});
