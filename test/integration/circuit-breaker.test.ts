import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { config, DEAD_HOST, deadPort, startGateway, startUpstream, withTestListeners, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, bearer, call, waitFor, type Reply } from '../helpers/http.ts';

// A real gateway in front of a model that fails on demand and a port nothing listens on.
// The gateway runs on the real clock; recovery uses a short reset_timeout_s and waits on
// the gateway's answers, never on a fixed sleep.
const KEY = 'breaker-test-key-1';
let gw: TestGateway;
let flaky: TestUpstream;
let failing = true;
let dead: number;

const doc = (deadBreaker: Record<string, unknown>): Record<string, unknown> => ({
  endpoints: {
    models: {
      keys: { primary: KEY },
      traffic: { flaky: 100, dead: 0 },
      deployments: {
        flaky: {
          instances: [flaky.url],
          circuit_breaker: { error_threshold_percent: 50, volume_threshold: 4, window_s: 10, reset_timeout_s: 0.5 },
          // The breaker alone is under test: outlier detection (on by default) would eject the
          // one instance after five 500s in a row and answer 503 NoReadyInstance instead.
          outlier_detection: { max_ejection_percent: 0 },
        },
        dead: { instances: [`http://${DEAD_HOST}:${dead}`], circuit_breaker: deadBreaker, outlier_detection: { max_ejection_percent: 0 } },
      },
    },
  },
});
const DEAD_BREAKER = { volume_threshold: 3, reset_timeout_s: 30 };

const ready = (async () => {
  flaky = await startUpstream('flaky', (_req, res) => {
    const status = failing ? 500 : 200;
    const body = JSON.stringify({ ok: !failing });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  dead = await deadPort();
  gw = await startGateway(doc(DEAD_BREAKER));
})();

after(async () => {
  await gw?.close();
  await flaky?.close();
});

const score = (deployment: string): Promise<Reply> =>
  call(`${gw.url}/endpoints/models/score`, { body: '{}', headers: { ...bearer(KEY), 'azureml-model-deployment': deployment } });

/** Access lines of one deployment, once the gateway has logged them (after-hooks ran by then). */
const accessOf = (deployment: string): Record<string, unknown>[] => gw.logs.access().filter((l) => l.deployment === deployment);

async function breakerState(deployment: string): Promise<number | undefined> {
  const r = await call(`${gw.adminUrl}/metrics`);
  assert.equal(r.status, 200);
  const line = r.body.split('\n').find((l) => l.startsWith('switchyard_circuit_breaker_state{') && l.includes(`deployment="${deployment}"`) && l.includes('endpoint="models"'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function throttledBreakerOpen(): Promise<number> {
  const r = await call(`${gw.adminUrl}/metrics`);
  const line = r.body.split('\n').find((l) => l.startsWith('switchyard_throttled_total{') && l.includes('endpoint="models"') && l.includes('reason="breaker_open"'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function assertOpen(r: Reply, deployment: string): number {
  assertGatewayError(r, 503, 'CircuitOpen');
  assert.equal(r.headers['azureml-model-deployment'], deployment);
  const retryAfter = Number(r.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After is whole seconds >= 1: ${r.headers['retry-after']}`);
  return retryAfter;
}

test('connection refused: the breaker opens after volume_threshold failures and answers 503 CircuitOpen with Retry-After', async () => {
  await ready;
  assert.equal(await breakerState('dead'), 0, 'closed at start');
  for (let i = 0; i < 3; i++) assertGatewayError(await score('dead'), 502, 'BadGateway');
  await waitFor(() => accessOf('dead').length >= 3, 'three access lines');

  const r = await score('dead');
  const retryAfter = assertOpen(r, 'dead');
  assert.ok(retryAfter >= 29 && retryAfter <= 30, `seconds until the half-open: ${retryAfter}`);
  assert.equal(await breakerState('dead'), 1);
  assert.ok(await throttledBreakerOpen() >= 1, 'counted in switchyard_throttled_total{reason="breaker_open"}');

  await waitFor(() => accessOf('dead').length >= 4, 'the refusal\'s access line');
  const line = accessOf('dead')[3];
  assert.equal(line?.status, 503);
  assert.equal(line?.throttle, 'breaker_open');
  const opened = gw.logs.lines.filter((l) => l.msg === 'circuit breaker opened' && l.deployment === 'dead');
  assert.equal(opened.length, 1);
  assert.equal(opened[0]?.level, 40, 'warn');
  assert.deepEqual(
    { endpoint: opened[0]?.endpoint, error_percent: opened[0]?.error_percent, requests: opened[0]?.requests, window_s: opened[0]?.window_s },
    { endpoint: 'models', error_percent: 100, requests: 3, window_s: 10 },
  );
});

test('a reload with the same settings keeps the open breaker; changed settings start a fresh one', async () => {
  await ready;
  assertOpen(await score('dead'), 'dead');
  gw.gw.store.apply(config(withTestListeners(doc(DEAD_BREAKER))));
  assertOpen(await score('dead'), 'dead');
  assert.equal(await breakerState('dead'), 1);
  gw.gw.store.apply(config(withTestListeners(doc({ ...DEAD_BREAKER, volume_threshold: 5 }))));
  assertGatewayError(await score('dead'), 502, 'BadGateway');
  assert.equal(await breakerState('dead'), 0, 'the gauge reads the fresh breaker');
});

test('a failing model: 500s open the breaker (the model sees no more), a failed probe re-opens, a good one closes', async () => {
  await ready;
  failing = true;
  for (let i = 0; i < 4; i++) assert.equal((await score('flaky')).status, 500, 'the model\'s 500 passes through');
  await waitFor(() => accessOf('flaky').length >= 4, 'four access lines');
  const r = await score('flaky');
  assert.equal(assertOpen(r, 'flaky'), 1, 'reset_timeout_s 0.5 rounds up to 1');
  assert.equal(flaky.seen.length, 4, 'the refused request never reached the model');

  // Still failing: after 0.5 s one probe goes through, fails, and the breaker opens again.
  let probe: Reply | undefined;
  await waitFor(async () => {
    const p = await score('flaky');
    if (p.status === 503) return false;
    probe = p;
    return true;
  }, 'the first probe');
  assert.equal(probe?.status, 500, 'the probe reached the failing model');
  assert.equal(flaky.seen.length, 5);

  // Recovered: the next probe succeeds and closes the breaker. Until then every request
  // is refused: the failed probe re-opened it (the model sees the one probe, nothing else).
  failing = false;
  await waitFor(async () => {
    const p = await score('flaky');
    if (p.status === 503) return false;
    assert.equal(p.status, 200);
    return true;
  }, 'the breaker to close');
  assert.equal(flaky.seen.length, 6, 'between the two probes the model saw nothing');
  for (let i = 0; i < 5; i++) assert.equal((await score('flaky')).status, 200);
  assert.equal(flaky.seen.length, 11);
  assert.equal(await breakerState('flaky'), 0);
  const levels = gw.logs.lines.filter((l) => l.deployment === 'flaky' && typeof l.msg === 'string' && l.msg.startsWith('circuit breaker')).map((l) => l.msg);
  assert.deepEqual(levels, ['circuit breaker opened', 'circuit breaker probe failed; staying open', 'circuit breaker closed']);
});
