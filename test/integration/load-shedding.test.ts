import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, bearer, call, waitFor } from '../helpers/http.ts';

// The gateway runs in this process, so busy turns of this event loop are the gateway's own
// overload: real event-loop delay, measured by the real monitor.
const KEY = 'shed-test-key-primary';
const SECOND = 'shed-test-key-secondary';
let gw: TestGateway;
let model: TestUpstream;

const ready = (async () => {
  model = await startUpstream('blue');
  gw = await startGateway({
    server: { load_shedding: { max_event_loop_delay_ms: 20 } },
    endpoints: {
      cars: {
        keys: { primary: KEY, secondary: SECOND },
        priority: { callers: { primary: 'critical' } },
        traffic: { blue: 100 },
        deployments: { blue: { instances: [model.url] } },
      },
    },
  });
})();

after(async () => {
  await gw?.close();
  await model?.close();
});

/** Keep the event loop busy (30 ms turns) until the returned function is called. */
function saturate(): () => void {
  const t = setInterval(() => {
    const until = performance.now() + 30;
    while (performance.now() < until) { /* busy */ }
  }, 1);
  return () => clearInterval(t);
}

const score = (key: string, headers: Record<string, string> = {}) =>
  call(`${gw.url}/endpoints/cars/score`, { body: '{}', headers: { ...bearer(key), ...headers } });

test('a lagging event loop sheds sheddable requests with 503 Overloaded while critical ones are served, and recovers', async () => {
  await ready;
  assert.equal((await score(SECOND, { 'x-priority': 'sheddable' })).status, 200, 'calm: every class is served');
  const stop = saturate();
  try {
    let shed: Awaited<ReturnType<typeof score>> | undefined;
    await waitFor(async () => {
      const r = await score(SECOND, { 'x-priority': 'sheddable' });
      if (r.status === 503) shed = r;
      return shed !== undefined;
    }, 'a sheddable request is shed');
    assertGatewayError(shed!, 503, 'Overloaded');
    assert.ok(shed!.headers['retry-after']);
    // Critical callers (the primary key, by the priority mapping) are shed only past twice the threshold.
    assert.equal((await score(KEY)).status, 200);
  } finally {
    stop();
  }
  await waitFor(async () => (await score(SECOND, { 'x-priority': 'sheddable' })).status === 200, 'served again once the loop is calm');
  const metrics = await call(`${gw.adminUrl}/metrics`);
  assert.match(metrics.body, /switchyard_throttled_total\{endpoint="cars",reason="overloaded"\} [1-9]/);
  assert.ok(gw.logs.access().some((l) => l.throttle === 'overloaded' && l.status === 503 && l.error === 'Overloaded'), 'the access line names the reason');
});
