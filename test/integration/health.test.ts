import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { deadOrigin, startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, bearer, call, waitFor } from '../helpers/http.ts';

// Issue 10: readiness probes, passive ejection, the health-aware split and waiting for a
// ready instance, against real model servers on loopback.
const KEY = 'health-test-key-0123456789';
const ADMIN = 'health-test-admin-0123456789';
const PROBE = { path: '/ready', initial_delay: 0, period: 0.05, timeout: 0.5, success_threshold: 2, failure_threshold: 1 };

/** A model server whose readiness endpoint answers 200 or 503 as the test says. */
async function model(name: string, ready = true): Promise<TestUpstream & { setReady(r: boolean): void; probes(): number }> {
  let isReady = ready;
  let probes = 0;
  const u = await startUpstream(name, (req, res) => {
    if (req.url === '/ready') {
      probes++;
      res.writeHead(isReady ? 200 : 503).end();
      return;
    }
    const text = JSON.stringify({ deployment: name });
    res.writeHead(200, { 'content-type': 'application/json' }).end(text);
  });
  return Object.assign(u, { setReady: (r: boolean) => { isReady = r; }, probes: () => probes });
}

const score = (gw: TestGateway, headers: Record<string, string> = {}) =>
  call(`${gw.url}/endpoints/cars/score`, { body: '{}', headers: { ...bearer(KEY), ...headers } });

async function deployments(gw: TestGateway, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await score(gw);
    assert.equal(r.status, 200, r.body);
    out.push(String(r.headers['azureml-model-deployment']));
  }
  return out;
}

const metric = async (gw: TestGateway, re: RegExp): Promise<string | undefined> => re.exec((await call(`${gw.adminUrl}/metrics`)).body)?.[1];

describe('readiness probes and the health-aware split', () => {
  let blue: Awaited<ReturnType<typeof model>>;
  let green: Awaited<ReturnType<typeof model>>;
  let gw: TestGateway;
  after(async () => {
    await gw?.close();
    await blue?.close();
    await green?.close();
  });

  test('a probed instance starts unready; its share spills to the other deployment until it passes success_threshold probes', async () => {
    blue = await model('blue', false);
    green = await model('green');
    gw = await startGateway({
      admin: { keys: [ADMIN] },
      endpoints: {
        cars: {
          keys: { primary: KEY },
          traffic: { blue: 50, green: 50 },
          deployments: {
            blue: { instances: [blue.url], readiness_probe: PROBE },
            green: { instances: [green.url], readiness_probe: PROBE },
          },
        },
      },
    });
    await waitFor(async () => (await call(`${gw.adminUrl}/readyz`)).status === 200, '/readyz once the first probe round ran');
    await waitFor(async () => (await metric(gw, /switchyard_instance_ready\{endpoint="cars",deployment="green",[^}]*\} (\d)/)) === '1', 'green ready');
    assert.equal(await metric(gw, /switchyard_instance_ready\{endpoint="cars",deployment="blue",[^}]*\} (\d)/), '0');
    assert.deepEqual(await deployments(gw, 6), Array(6).fill('green'), 'blue\'s half spills to green');
    assert.ok(Number(await metric(gw, /switchyard_spill_total\{endpoint="cars",from="blue",to="green"\} (\d+)/)) >= 3);
    assert.equal(gw.logs.lines.filter((l) => l.msg === 'deployment has no ready instance: its traffic share spills to the other deployments').length, 1, 'logged once, not per request');

    blue.setReady(true);
    await waitFor(async () => (await metric(gw, /switchyard_instance_ready\{endpoint="cars",deployment="blue",[^}]*\} (\d)/)) === '1', 'blue ready after two good probes');
    const split = await deployments(gw, 10);
    assert.equal(split.filter((d) => d === 'blue').length, 5, `50/50 again: ${split.join(',')}`);
  });

  test('an instance failing its probe stops getting traffic; with none ready anywhere a request waits for one, then 503', async () => {
    green.setReady(false);
    blue.setReady(false);
    await waitFor(async () => (await metric(gw, /switchyard_instance_ready\{endpoint="cars",deployment="blue",[^}]*\} (\d)/)) === '0'
      && (await metric(gw, /switchyard_instance_ready\{endpoint="cars",deployment="green",[^}]*\} (\d)/)) === '0', 'both unready');
    // Waits up to max_queue_wait_ms (500 by default), then 503 with Retry-After.
    const started = Date.now();
    const r = await score(gw);
    assertGatewayError(r, 503, 'NoReadyInstance');
    assert.ok(r.headers['retry-after']);
    assert.ok(Date.now() - started >= 400, 'it waited for a ready instance first');
    assert.equal(r.headers['azureml-model-deployment'], undefined, 'no deployment was chosen');
    // One that named its deployment gets the same 503, naming it (SPEC §3).
    const pinned = await score(gw, { 'azureml-model-deployment': 'blue' });
    assertGatewayError(pinned, 503, 'NoReadyInstance');
    assert.equal(pinned.headers['azureml-model-deployment'], 'blue');
    // As many may wait as the deployments' queues would hold (16 x 2 instances here); the
    // rest get 429 at once, counted as queue_full.
    const crowding = Promise.all(Array.from({ length: 40 }, () => score(gw)));
    await waitFor(async () => (await metric(gw, /switchyard_ready_wait_length\{endpoint="cars"\} (\d+)/)) === '32', 'the 32 waiting in the gauge');
    const crowd = await crowding;
    const statuses = crowd.map((c) => c.status);
    assert.equal(statuses.filter((st) => st === 429).length, 8, statuses.join(','));
    assert.equal(statuses.filter((st) => st === 503).length, 32);
    assertGatewayError(crowd.find((c) => c.status === 429)!, 429, 'TooManyPendingRequests');
    assert.match((await call(`${gw.adminUrl}/metrics`)).body, /switchyard_throttled_total\{endpoint="cars",reason="queue_full"\} 8/);
    // A request that arrives while none is ready is served as soon as one is.
    const waiting = score(gw);
    green.setReady(true);
    const served = await waiting;
    assert.equal(served.status, 200);
    assert.equal(served.headers['azureml-model-deployment'], 'green');
  });

  test('the endpoint view shows each instance\'s readiness, ejection and last probe', async () => {
    type View = { state: { deployments: Record<string, { instances: { url: string; ready: boolean; ejected: boolean; ejected_until: null; in_flight: number; last_probe: { ok: boolean; status: number; at: string } }[] }> } };
    blue.setReady(false);
    await waitFor(async () => (await metric(gw, /switchyard_instance_ready\{endpoint="cars",deployment="blue",[^}]*\} (\d)/)) === '0', 'blue unready');
    const view = (await call(`${gw.adminUrl}/admin/endpoints/cars`, { headers: bearer(ADMIN) })).json<View>();
    const b = view.state.deployments.blue!.instances[0]!;
    assert.deepEqual([b.url, b.ready, b.ejected, b.ejected_until, b.in_flight, b.last_probe.ok, b.last_probe.status], [blue.url, false, false, null, 0, false, 503]);
    assert.ok(Date.now() - Date.parse(b.last_probe.at) < 5_000);
    const g = view.state.deployments.green!.instances[0]!;
    assert.deepEqual([g.ready, g.last_probe.ok, g.last_probe.status], [true, true, 200]);
  });
});

test('clients that go away mid-request do not eject a healthy instance', async () => {
  const held: ServerResponse[] = [];
  const slow = await startUpstream('blue', (_req, res) => { held.push(res); });
  const gw = await startGateway({
    admin: { keys: [ADMIN] },
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [slow.url], outlier_detection: { consecutive_failures: 2, base_ejection_time_s: 30 } } } } },
  });
  try {
    // Five requests the client abandons while the model still works on them.
    for (let i = 0; i < 5; i++) {
      const controller = new AbortController();
      const pending = fetch(`${gw.url}/endpoints/cars/score`, { method: 'POST', body: '{}', headers: bearer(KEY), signal: controller.signal }).catch(() => undefined);
      await waitFor(() => held.length === i + 1, 'the request to reach the model');
      controller.abort();
      await pending;
    }
    await waitFor(() => gw.logs.access().length === 5, 'five access lines');
    assert.ok(gw.logs.access().every((l) => l.status === 499));
    assert.equal(await metric(gw, new RegExp(`switchyard_instance_ready\\{[^}]*instance="${slow.url}"\\} (\\d)`)), '1', 'still ready');
    assert.equal(await metric(gw, /switchyard_instance_ejections_total\{[^}]*\} (\d+)/), undefined, 'never ejected');
  } finally {
    for (const r of held) r.destroy();
    await gw.close();
    await slow.close();
  }
});

describe('passive outlier detection', () => {
  let a: TestUpstream;
  let b: TestUpstream;
  let gw: TestGateway;
  after(async () => {
    await gw?.close();
    await a?.close();
    await b?.close();
  });

  test('a dead instance is ejected after consecutive failures; its requests are retried on the others and none fails', async () => {
    a = await startUpstream('blue');
    b = await startUpstream('blue');
    const dead = await deadOrigin();
    gw = await startGateway({
      admin: { keys: [ADMIN] },
      endpoints: {
        cars: {
          keys: { primary: KEY },
          traffic: { blue: 100 },
          deployments: { blue: { instances: [a.url, b.url, dead], outlier_detection: { consecutive_failures: 2, base_ejection_time_s: 30, max_ejection_percent: 50 } } },
        },
      },
    });
    for (let i = 0; i < 30; i++) assert.equal((await score(gw)).status, 200);
    assert.equal(await metric(gw, /switchyard_instance_ejections_total\{[^}]*instance="([^"]+)"\} 1/), dead);
    assert.equal(await metric(gw, new RegExp(`switchyard_instance_ready\\{[^}]*instance="${dead}"\\} (\\d)`)), '0');
    const view = (await call(`${gw.adminUrl}/admin/endpoints/cars`, { headers: bearer(ADMIN) })).json<{ state: { deployments: { blue: { instances: { url: string; ejected: boolean; ejected_until: string | null }[] } } } }>();
    const ejected = view.state.deployments.blue.instances.find((i) => i.url === dead);
    assert.equal(ejected?.ejected, true);
    assert.ok(ejected?.ejected_until && Date.parse(ejected.ejected_until) > Date.now() + 20_000);
    assert.ok(gw.logs.lines.some((l) => l.msg === 'instance ejected after consecutive failures' && l.instance === dead));
  });
});

test('a deployment whose probe waits a long initial_delay holds neither the start nor the other endpoints back', async () => {
  const big = await startUpstream('big');
  const small = await startUpstream('small');
  const gw = await startGateway({
    admin: { keys: [ADMIN] },
    endpoints: {
      bigllm: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [big.url], readiness_probe: { ...PROBE, initial_delay: 600 } } } },
      small: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [small.url], readiness_probe: PROBE } } },
    },
  });
  try {
    // Started (the listeners are bound) long before the 600 s initial_delay.
    await waitFor(async () => (await call(`${gw.adminUrl}/readyz`)).status === 200, '/readyz');
    assert.equal((await call(`${gw.url}/endpoints/small/score`, { body: '{}', headers: bearer(KEY) })).status, 200);
    assert.equal(await metric(gw, /switchyard_instance_ready\{endpoint="bigllm",[^}]*\} (\d)/), '0', 'the big model is unready until its first probe passes');
  } finally {
    await gw.close();
    await big.close();
    await small.close();
  }
});
