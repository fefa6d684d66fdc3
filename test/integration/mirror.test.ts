import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { config, startGateway, startUpstream, withTestListeners, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor } from '../helpers/http.ts';

// Issue 11: shadow traffic through a real gateway to real model servers. The live model and
// the shadow answer as each test says; the report and the metrics are read from the admin API.
const KEY = 'mirror-test-key-0123456789';
const ADMIN = 'mirror-test-admin-0123456789';

type Answer = (req: IncomingMessage, body: string) => { status?: number; json?: unknown; delayMs?: number };

/** A model server whose answer the test sets (and can change) through `answer`. */
async function model(name: string, answer: Answer): Promise<TestUpstream & { set(a: Answer): void }> {
  let current = answer;
  const u = await startUpstream(name, (req: IncomingMessage, res: ServerResponse, body: string) => {
    const a = current(req, body);
    const send = (): void => {
      const text = JSON.stringify(a.json ?? {});
      res.writeHead(a.status ?? 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (a.delayMs) setTimeout(send, a.delayMs).unref();
    else send();
  });
  return Object.assign(u, { set: (a: Answer) => { current = a; } });
}

interface Report {
  mirrored: number;
  skipped: { skipped_budget: number; skipped_body: number };
  outcomes: Record<string, number>;
  agreement_rate: number | null;
  fields: { path: string; count: number; noisy: boolean }[];
  noise_baseline: { pairs: number; noisy_fields: { path: string }[]; skipped_live_busy: number } | null;
  in_flight: number;
}

async function gatewayWith(live: TestUpstream, shadow: TestUpstream, extra: Record<string, unknown> = {}, shadowTimeoutMs = 5000): Promise<TestGateway> {
  return startGateway({
    admin: { keys: [ADMIN] },
    endpoints: {
      cars: {
        keys: { primary: KEY },
        traffic: { blue: 100 },
        mirror_traffic: { shadow: 10 },
        deployments: {
          blue: { instances: [live.url], request_settings: { max_concurrent_requests_per_instance: 256 } },
          shadow: { instances: [shadow.url], request_settings: { request_timeout_ms: shadowTimeoutMs } },
        },
        ...extra,
      },
    },
  });
}

/** A gateway mirroring 50% of `blue` (these instances, these request settings) to `shadow`, learning live's noise. */
function noiseGateway(blue: string[], shadow: TestUpstream, requestSettings: Record<string, unknown> = {}): Promise<TestGateway> {
  return startGateway({
    admin: { keys: [ADMIN] },
    endpoints: {
      cars: {
        keys: { primary: KEY },
        traffic: { blue: 100 },
        mirror_traffic: { shadow: 50 },
        mirror_compare: { noise_baseline: true },
        deployments: { blue: { instances: blue, request_settings: requestSettings }, shadow: { instances: [shadow.url] } },
      },
    },
  });
}

const score = (gw: TestGateway, body = '{"x":1}', headers: Record<string, string> = {}) =>
  call(`${gw.url}/endpoints/cars/score`, { body, headers: { ...bearer(KEY), ...headers } });
const report = async (gw: TestGateway): Promise<Report> => (await call(`${gw.adminUrl}/admin/endpoints/cars/mirror`, { headers: bearer(ADMIN) })).json<Report>();

describe('mirroring', () => {
  const started: { close(): Promise<void> }[] = [];
  after(async () => {
    for (const s of started.reverse()) await s.close();
  });
  const keep = <T extends { close(): Promise<void> }>(s: T): T => (started.push(s), s);

  test('10% is exactly 10 of every 100; live calls carry no shadow header and clients never see the shadow', async () => {
    const live = keep(await model('blue', () => ({ json: { from: 'live' } })));
    const shadow = keep(await model('shadow', () => ({ json: { from: 'shadow' } })));
    const gw = keep(await gatewayWith(live, shadow));
    for (let i = 0; i < 1000; i++) {
      const r = await score(gw);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json(), { from: 'live' });
      assert.equal(r.headers['azureml-model-deployment'], 'blue');
    }
    await waitFor(() => shadow.seen.length === 100, 'the 100 shadow copies');
    assert.equal(live.seen.length, 1000);
    assert.ok(live.seen.every((s) => s.headers['x-shadow-request'] === undefined), 'live calls carry no shadow header');
    assert.ok(shadow.seen.every((s) => s.headers['x-shadow-request'] === '1' && s.body === '{"x":1}' && s.method === 'POST' && s.url === '/score'));
    // Pinned requests are never mirrored.
    for (let i = 0; i < 20; i++) assert.equal((await score(gw, '{}', { 'azureml-model-deployment': 'blue' })).status, 200);
    assert.equal(shadow.seen.length, 100);
    await waitFor(async () => (await report(gw)).mirrored === 100, 'every copy settled');
    const rep = await report(gw);
    assert.equal(rep.outcomes.disagree, 100);
    assert.equal(rep.agreement_rate, 0);
    assert.deepEqual(rep.fields.map((f) => [f.path, f.count]), [['$.from', 100]]);
    const metrics = (await call(`${gw.adminUrl}/metrics`)).body;
    assert.match(metrics, /switchyard_mirror_requests_total\{endpoint="cars",deployment="shadow",outcome="disagree"\} 100/);
    assert.match(metrics, /switchyard_mirror_latency_delta_seconds_count\{endpoint="cars",deployment="shadow"\} 100/);
  });

  test('equal, key-reordered and numerically close JSON agrees; a different value disagrees at its path', async () => {
    let n = 0;
    const live = keep(await model('blue', () => ({ json: { label: 'cat', score: 0.9, extra: { a: 1, b: 2 } } })));
    const shadow = keep(await model('shadow', () => {
      n++;
      if (n % 3 === 1) return { json: { extra: { b: 2, a: 1 }, score: 0.9, label: 'cat' } };
      if (n % 3 === 2) return { json: { label: 'cat', score: 0.9 * (1 + 1e-9), extra: { a: 1, b: 2 } } };
      return { json: { label: 'dog', score: 0.9, extra: { a: 1, b: 2 } } };
    }));
    const gw = keep(await gatewayWith(live, shadow, { mirror_traffic: { shadow: 50 } }));
    for (let i = 0; i < 60; i++) assert.equal((await score(gw)).status, 200);
    await waitFor(async () => (await report(gw)).mirrored === 30, 'the 30 copies settled');
    const rep = await report(gw);
    assert.deepEqual([rep.outcomes.agree, rep.outcomes.disagree], [20, 10]);
    assert.deepEqual(rep.fields.map((f) => f.path), ['$.label']);
  });

  test('a shadow that takes 5 s leaves live latency alone; the in-flight budget bounds it and skips the rest', async () => {
    const live = keep(await model('blue', () => ({ json: { ok: true } })));
    const shadow = keep(await model('shadow', () => ({ json: { ok: true }, delayMs: 5000 })));
    const gw = keep(await gatewayWith(live, shadow, { mirror_traffic: { shadow: 50 }, mirror_max_in_flight: 5 }));
    const started = Date.now();
    for (let i = 0; i < 200; i++) assert.equal((await score(gw)).status, 200);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 4000, `200 live requests took ${elapsed} ms while every copy hangs 5 s`);
    const rep = await report(gw);
    assert.equal(rep.in_flight, 5, 'no more than the budget out at once');
    assert.equal(rep.skipped.skipped_budget, 95, '100 sampled, 5 sent, 95 skipped');
    assert.equal(shadow.seen.length <= 5, true);
  });

  test('10,000 requests against a shadow that hangs: memory stays flat, the copies out never pass the budget', async () => {
    const live = keep(await model('blue', () => ({ json: { ok: true, pad: 'p'.repeat(2000) } })));
    // The shadow never answers within the test (its timeout is a minute): nothing frees the budget.
    const shadow = await model('shadow', () => ({ json: { ok: true }, delayMs: 60_000 }));
    const gw = keep(await gatewayWith(live, shadow, {}, 60_000));
    keep(shadow); // closed before the gateway, so the gateway's pools have nothing left to wait for
    const run = async (n: number): Promise<void> => {
      const workers = Array.from({ length: 20 }, async () => {
        for (let i = 0; i < n / 20; i++) assert.equal((await score(gw, JSON.stringify({ x: 'q'.repeat(1000) }))).status, 200);
      });
      await Promise.all(workers);
      // What the test's own model servers and log capture keep of each request is not the gateway's.
      live.seen.length = 0;
      shadow.seen.length = 0;
      gw.logs.lines.length = 0;
      gw.logs.raw.length = 0;
    };
    // A full collection before each reading, so the figures are what is kept, not garbage.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    await run(2000);
    gc();
    const before = process.memoryUsage().heapUsed;
    await run(8000);
    gc();
    const grown = (process.memoryUsage().heapUsed - before) / 2 ** 20;
    const rep = await report(gw);
    assert.equal(rep.in_flight, 100, 'the default budget of copies out at once');
    assert.equal(rep.skipped.skipped_budget, 900, '1,000 sampled: 100 out, 900 skipped');
    assert.equal(rep.mirrored, 0, 'none settled');
    // 8,000 requests with 800 more sampled copies: nothing of them is kept past the budget.
    assert.ok(grown < 10, `heap grew ${grown.toFixed(1)} MiB over 8,000 requests`);
  });

  test('bodies over mirror_max_body_bytes are not mirrored (counted)', async () => {
    const live = keep(await model('blue', () => ({ json: { ok: true } })));
    const shadow = keep(await model('shadow', () => ({ json: { ok: true } })));
    const gw = keep(await gatewayWith(live, shadow, { mirror_traffic: { shadow: 50 }, mirror_max_body_bytes: 100 }));
    const big = JSON.stringify({ x: 'y'.repeat(200) });
    for (let i = 0; i < 10; i++) assert.equal((await score(gw, big)).status, 200);
    for (let i = 0; i < 10; i++) assert.equal((await score(gw)).status, 200);
    await waitFor(async () => (await report(gw)).mirrored === 5, 'the small bodies mirrored');
    const rep = await report(gw);
    assert.equal(rep.skipped.skipped_body, 5);
    assert.ok(shadow.seen.every((s) => s.body.length <= 100));
  });

  test('noise baseline: a live model with a random id and a timestamp is learned as noisy there, and the shadow agrees otherwise', async () => {
    const answer = (label: string): Answer => () => ({ json: { id: randomUUID(), created: Date.now() + Math.floor(Math.random() * 1e6), label } });
    const live = keep(await model('blue', answer('cat')));
    const live2 = keep(await model('blue', answer('cat')));
    const shadow = keep(await model('shadow', answer('cat')));
    const gw = keep(await noiseGateway([live.url, live2.url], shadow));
    for (let i = 0; i < 200; i++) assert.equal((await score(gw)).status, 200);
    await waitFor(async () => (await report(gw)).mirrored === 100, 'the copies settled');
    let rep = await report(gw);
    assert.ok((rep.noise_baseline?.pairs ?? 0) >= 9, `baseline pairs: ${rep.noise_baseline?.pairs}`);
    assert.deepEqual(rep.noise_baseline?.noisy_fields.map((f) => f.path).sort(), ['$.created', '$.id']);
    assert.ok((rep.agreement_rate ?? 0) >= 0.85, `agreement once noise is learned: ${rep.agreement_rate}`);
    // A real difference still counts.
    shadow.set(answer('dog'));
    for (let i = 0; i < 40; i++) assert.equal((await score(gw)).status, 200);
    await waitFor(async () => (await report(gw)).mirrored === 120, 'the next copies settled');
    rep = await report(gw);
    const label = rep.fields.find((f) => f.path === '$.label');
    assert.ok(label && !label.noisy && label.count >= 20, JSON.stringify(rep.fields));
  });

  test('a shadow that streams forever is cut once the live answer is in and its timeout passed, freeing the budget; one past the cap is not read to the end', async () => {
    const live = keep(await model('blue', () => ({ json: { ok: true } })));
    const endless: ServerResponse[] = [];
    const shadow = keep(await startUpstream('shadow', (req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = (): void => { while (res.write(chunk)); res.once('drain', pump); };
        pump();
        endless.push(res);
        return;
      }
      // An event every 100 ms, forever: never silent long enough for request_timeout_ms.
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const tick = setInterval(() => res.write('data: {"tok":1}\n\n'), 100);
      res.on('close', () => clearInterval(tick));
      endless.push(res);
    }, true));
    const gw = keep(await gatewayWith(live, shadow, { mirror_traffic: { shadow: 50 }, mirror_max_body_bytes: 100_000 }, 300));
    try {
      for (let i = 0; i < 10; i++) assert.equal((await score(gw)).status, 200);
      await waitFor(async () => (await report(gw)).mirrored === 5, 'the endless copies cut 300 ms after the live answer');
      let rep = await report(gw);
      assert.equal(rep.outcomes.timeout, 5);
      assert.equal(rep.in_flight, 0, 'the budget is free again');
      // An answer past mirror_max_body_bytes: the copy stops reading at once, not_compared.
      for (let i = 0; i < 4; i++) assert.equal((await call(`${gw.url}/endpoints/cars/big`, { body: '{}', headers: bearer(KEY) })).status, 200);
      await waitFor(async () => (await report(gw)).mirrored === 7, 'the big copies settled');
      rep = await report(gw);
      assert.equal(rep.outcomes.not_compared, 2, JSON.stringify(rep));
      assert.equal(rep.in_flight, 0);
    } finally {
      for (const r of endless) r.destroy();
    }
  });

  test('a reload that changes the mirror settings keeps one budget for the copies still out', async () => {
    const live = keep(await model('blue', () => ({ json: { ok: true } })));
    const shadow = await model('shadow', () => ({ json: { ok: true }, delayMs: 60_000 }));
    const gw = keep(await gatewayWith(live, shadow, { mirror_traffic: { shadow: 50 }, mirror_max_in_flight: 5 }, 60_000));
    keep(shadow);
    for (let i = 0; i < 20; i++) assert.equal((await score(gw)).status, 200);
    assert.equal((await report(gw)).in_flight, 5);
    gw.gw.apply(config(withTestListeners({
      admin: { keys: [ADMIN] },
      endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, mirror_traffic: { shadow: 40 }, mirror_max_in_flight: 5, deployments: { blue: { instances: [live.url] }, shadow: { instances: [shadow.url], request_settings: { request_timeout_ms: 60_000 } } } } },
    })));
    for (let i = 0; i < 20; i++) assert.equal((await score(gw)).status, 200);
    const rep = await report(gw);
    assert.equal(rep.in_flight, 5, 'still the one budget of 5');
    assert.equal(rep.skipped.skipped_budget, 8, 'a fresh report (40%: 8 sampled), every copy skipped');
    assert.equal(shadow.seen.length, 5);
  });

  test('the noise baseline sends its second live copy only when the live deployment has a free slot', async () => {
    let inFlight = 0;
    let most = 0;
    const slowLive = async (name: string): Promise<TestUpstream> => keep(await model(name, () => {
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => inFlight--, 100).unref();
      return { json: { ok: true }, delayMs: 100 };
    }));
    const live = await slowLive('blue');
    const shadow = keep(await model('shadow', () => ({ json: { ok: true } })));
    const gw = keep(await noiseGateway([live.url], shadow, { max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 10_000 }));
    for (let i = 0; i < 40; i++) assert.equal((await score(gw)).status, 200);
    assert.equal(most, 1, 'the live model never saw more than its one slot');
    assert.equal(live.seen.filter((x) => x.headers['x-shadow-request'] === '1').length, 0, 'no baseline copy while the one slot was taken');
    const rep = await report(gw);
    assert.equal(rep.noise_baseline?.skipped_live_busy, 2, 'and the report says so (20 mirrored, every 10th a baseline)');
  });

  test('the report of an endpoint without mirror_traffic is 404', async () => {
    const live = keep(await model('blue', () => ({ json: {} })));
    const gw = keep(await startGateway({ admin: { keys: [ADMIN] }, endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [live.url] } } } } }));
    const r = await call(`${gw.adminUrl}/admin/endpoints/cars/mirror`, { headers: bearer(ADMIN) });
    assert.equal(r.status, 404);
  });
});
