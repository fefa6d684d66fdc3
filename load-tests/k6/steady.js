// @ts-check
/**
 * Steady load: scoring at a constant arrival rate (open model: slow answers do not slow the
 * senders), with thresholds on p99 latency and the error rate.
 *   k6 run -e KEY=<demo key> -e RATE=200 -e DURATION=1m load-tests/k6/steady.js
 * Env: BASE_URL, ENDPOINT, KEY, BODY as in smoke.js; RATE (req/s, 200), DURATION (1m),
 * VUS (pre-allocated, 50), MAX_VUS (200), P99_MS (250), MAX_ERROR_RATE (0.001).
 */
import http from 'k6/http';
import { check, fail } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ENDPOINT = __ENV.ENDPOINT || 'demo';
const KEY = __ENV.KEY || '';
const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });
const P99_MS = Number(__ENV.P99_MS || 250);
const MAX_ERROR_RATE = Number(__ENV.MAX_ERROR_RATE || 0.001);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 200),
      timeUnit: '1s',
      duration: __ENV.DURATION || '1m',
      preAllocatedVUs: Number(__ENV.VUS || 50),
      maxVUs: Number(__ENV.MAX_VUS || 200),
    },
  },
  thresholds: {
    'http_req_duration{name:score}': [`p(99)<${P99_MS}`],
    http_req_failed: [`rate<${MAX_ERROR_RATE}`],
    // Iterations k6 could not start because every VU was busy: the target was not held.
    dropped_iterations: ['count==0'],
  },
};

export function setup() {
  if (!KEY) fail('set KEY (the demo key printed by `npm start`)');
}

export default function () {
  const res = http.post(`${BASE_URL}/endpoints/${ENDPOINT}/score`, BODY, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    tags: { name: 'score' },
  });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
