// @ts-check
/**
 * Overload: an arrival rate well above what the endpoint may take (its rate_limit or its
 * deployments' concurrency), to see the gateway say no quickly instead of slowing down:
 * refusals are 429/503 with Retry-After and come back fast; admitted requests stay fast.
 *   k6 run -e KEY=<demo key> -e RATE=2000 -e DURATION=30s load-tests/k6/overload.js
 * Against the demo, give the endpoint a limit first (edit the printed config file), e.g.
 *   rate_limit: { requests_per_second: 200, burst: 50 }
 * Env: BASE_URL, ENDPOINT, KEY, BODY as in smoke.js; RATE (req/s, 2000), DURATION (30s),
 * VUS (pre-allocated, 100), MAX_VUS (400), REFUSED_P99_MS (5: how fast a refusal must be),
 * ADMITTED_P99_MS (250), RETRY_AFTER (1: a refused VU waits Retry-After before its next request).
 */
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ENDPOINT = __ENV.ENDPOINT || 'demo';
const KEY = __ENV.KEY || '';
const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });
const HONOUR_RETRY_AFTER = (__ENV.RETRY_AFTER || '1') === '1';

/** Time to answer of refused (429/503) and admitted (2xx) requests, apart. */
const refusedTime = new Trend('refused_duration', true);
const admittedTime = new Trend('admitted_duration', true);
const refused = new Counter('refused');
/** A refusal without Retry-After breaks SPEC §4. */
const missingRetryAfter = new Rate('refused_without_retry_after');
/** Anything but 2xx, 429 and 503 (a 5xx from the gateway or no answer at all). */
const otherFailures = new Rate('other_failures');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    overload: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 2000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: Number(__ENV.VUS || 100),
      maxVUs: Number(__ENV.MAX_VUS || 400),
    },
  },
  thresholds: {
    refused_duration: [`p(99)<${Number(__ENV.REFUSED_P99_MS || 5)}`],
    admitted_duration: [`p(99)<${Number(__ENV.ADMITTED_P99_MS || 250)}`],
    refused_without_retry_after: ['rate==0'],
    other_failures: ['rate==0'],
    // The point of the run: some requests must have been refused, or the load was not overload.
    refused: ['count>0'],
  },
};

export function setup() {
  if (!KEY) fail('set KEY (the demo key printed by `npm start`)');
}

export default function () {
  const res = http.post(`${BASE_URL}/endpoints/${ENDPOINT}/score`, BODY, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    tags: { name: 'score' },
    responseCallback: http.expectedStatuses({ min: 200, max: 299 }, 429, 503),
  });
  if (res.status === 429 || res.status === 503) {
    refused.add(1);
    refusedTime.add(res.timings.duration);
    const retryAfter = res.headers['Retry-After'];
    missingRetryAfter.add(!retryAfter);
    otherFailures.add(false);
    check(res, { 'refusal has the JSON error body': (r) => typeof r.body === 'string' && r.body.includes('"error"') });
    // A well-behaved client waits as told before trying again.
    if (HONOUR_RETRY_AFTER && retryAfter) sleep(Math.min(Number(retryAfter) || 1, 5));
    return;
  }
  otherFailures.add(res.status < 200 || res.status > 299);
  if (res.status >= 200 && res.status < 300) admittedTime.add(res.timings.duration);
}
