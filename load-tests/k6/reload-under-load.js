// @ts-check
/**
 * Reload under load: scoring at a constant rate while the config is reloaded; not one
 * request may get a 5xx. Reload by hand during the run (`kill -HUP <pid>`, or edit the config
 * file), or let the script do it: with ADMIN_KEY set, a second scenario PATCHes the endpoint's
 * traffic back and forth through the admin API every RELOAD_EVERY seconds.
 *   k6 run -e KEY=<demo key> -e RATE=200 -e DURATION=2m load-tests/k6/reload-under-load.js
 * Env: BASE_URL, ENDPOINT, KEY, BODY as in smoke.js; RATE (200), DURATION (2m), VUS (50),
 * MAX_VUS (200); ADMIN_URL (http://127.0.0.1:9090), ADMIN_KEY (unset: no automatic reloads),
 * RELOAD_EVERY (5), TRAFFIC_A ({"blue":90,"green":10}), TRAFFIC_B ({"blue":10,"green":90}).
 */
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ENDPOINT = __ENV.ENDPOINT || 'demo';
const KEY = __ENV.KEY || '';
const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });
const DURATION = __ENV.DURATION || '2m';
const ADMIN_URL = __ENV.ADMIN_URL || 'http://127.0.0.1:9090';
const ADMIN_KEY = __ENV.ADMIN_KEY || '';
const TRAFFIC = [__ENV.TRAFFIC_A || '{"blue":90,"green":10}', __ENV.TRAFFIC_B || '{"blue":10,"green":90}'];

/** Share of scoring responses with status >= 500 (gateway-made or passed through) or no
 * response at all (connection refused/reset: status 0): must stay 0. */
const serverErrors = new Rate('server_errors');
const reloads = new Counter('reloads');
const reloadFailures = new Counter('reload_failures');

/** @type {NonNullable<import('k6/options').Options['scenarios']>} */
const scenarios = {
  score: {
    executor: 'constant-arrival-rate',
    rate: Number(__ENV.RATE || 200),
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: Number(__ENV.VUS || 50),
    maxVUs: Number(__ENV.MAX_VUS || 200),
    exec: 'score',
  },
};
if (ADMIN_KEY) {
  scenarios.reload = { executor: 'constant-vus', vus: 1, duration: DURATION, exec: 'reload' };
}

/** @type {import('k6/options').Options} */
export const options = {
  scenarios,
  thresholds: {
    server_errors: ['rate==0'],
    // The admin calls must work too, or nothing was reloaded.
    reload_failures: ['count==0'],
  },
};

export function setup() {
  if (!KEY) fail('set KEY (the demo key printed by `npm start`)');
}

export function score() {
  const res = http.post(`${BASE_URL}/endpoints/${ENDPOINT}/score`, BODY, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    tags: { name: 'score' },
  });
  serverErrors.add(res.status >= 500 || res.status === 0, { status: String(res.status) });
  check(res, { 'status is 200': (r) => r.status === 200 });
}

export function reload() {
  sleep(Number(__ENV.RELOAD_EVERY || 5));
  const res = http.patch(`${ADMIN_URL}/admin/endpoints/${ENDPOINT}`, `{"traffic":${TRAFFIC[exec.scenario.iterationInTest % 2]}}`, {
    headers: { 'Content-Type': 'application/merge-patch+json', Authorization: `Bearer ${ADMIN_KEY}` },
    tags: { name: 'admin_patch' },
    // Admin calls are not scoring traffic: keep them out of http_req_failed.
    responseCallback: http.expectedStatuses({ min: 200, max: 599 }),
  });
  if (res.status === 200) reloads.add(1);
  else reloadFailures.add(1, { status: String(res.status) });
}
