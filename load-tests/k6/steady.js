// @ts-check
/* global open -- k6 init-context function (reads a file beside the script) */
/**
 * Steady load: scoring at a constant arrival rate (an open model, as real callers arrive:
 * a slow answer does not slow the next arrival), with thresholds on p99 latency and the
 * error rate. The shape (rate, duration, thresholds) is in steady.json, which `npm run bench`
 * also reads to drive the same scenario with its Node load runner (see README.md here).
 *
 *   k6 run load-tests/k6/steady.js
 *   k6 run -e RATE=1000 -e DURATION=5m load-tests/k6/steady.js
 * Env: BASE_URL, ADMIN_URL, KEY, ENDPOINT, BODY (lib.js); RATE (req/s), DURATION (e.g. 1m;
 * default steady.json's duration_s), P99_MS, MAX_ERROR_RATE (defaults from steady.json),
 * VUS (pre-allocated, 50), MAX_VUS (200).
 */
import http from 'k6/http';
import { check } from 'k6';
import { BODY, TREND_STATS, num, requireReady, scoreHeaders, scoreUrl } from './lib.js';

/** @type {{ rate: number, duration_s: number, p99_ms: number, max_error_rate: number }} */
const SHAPE = JSON.parse(open('./steady.json'));

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', SHAPE.rate),
      timeUnit: '1s',
      duration: __ENV.DURATION || `${SHAPE.duration_s}s`,
      preAllocatedVUs: num('VUS', 50),
      maxVUs: num('MAX_VUS', 200),
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    // 99% of scoring calls answered within P99_MS (the whole exchange, as the caller sees it).
    'http_req_duration{name:score}': [`p(99)<${num('P99_MS', SHAPE.p99_ms)}`],
    // Anything but 2xx, or no answer, counts as an error.
    http_req_failed: [`rate<${num('MAX_ERROR_RATE', SHAPE.max_error_rate)}`],
    // Arrivals k6 could not start because every VU was busy: the rate was not held, so the
    // latency figures describe a lighter load than asked for.
    dropped_iterations: ['count==0'],
  },
};

export function setup() {
  requireReady();
}

export default function () {
  const res = http.post(scoreUrl(), BODY, { headers: scoreHeaders(), tags: { name: 'score' } });
  check(res, { 'status is 200': (r) => r.status === 200 });
}
