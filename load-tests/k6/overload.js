// @ts-check
/**
 * Overload: more than the endpoint may take, to see the gateway say no quickly instead of
 * slowing down, and to see that a client doing what `Retry-After` says gets in.
 *
 * setup() gives ENDPOINT a rate limit through the admin API (PATCH `rate_limit`: LIMIT req/s,
 * burst BURST) and teardown() puts back what was there (SET_LIMIT=0 leaves the endpoint's
 * own limits alone; then give LIMIT/BURST if you want the admitted-count bound). Two scenarios:
 *
 * 1. `flood`: RATE arrivals a second for DURATION_S (an open model: refused callers do not
 *    slow the arrivals). Thresholds: some calls were refused (`refused{scenario:flood}` rate
 *    > 0: it was overload); every refusal (429/503) carries `Retry-After` and the JSON body
 *    and comes back within REFUSED_P99_MS at p99; admitted calls within ADMITTED_P99_MS at
 *    p99; nothing else (no 5xx but 503, no connection error); and no more admitted than the
 *    limit allows (LIMIT x DURATION_S + BURST, +10% for the token bucket's timing).
 * 2. `polite`, after the flood: POLITE_VUS callers sending back to back; a refused one
 *    sleeps `Retry-After` seconds and tries once more. Threshold: at least RETRY_OK of those
 *    retries are admitted (`retry_after_admitted`): Retry-After told the truth and waiting it
 *    out is enough (POLITE_VUS must stay under LIMIT for this to hold).
 *
 *   k6 run load-tests/k6/overload.js
 * Env: BASE_URL, ADMIN_URL, KEY, ADMIN_KEY, ENDPOINT, BODY (lib.js); SET_LIMIT (1), LIMIT
 * (200), BURST (LIMIT), RATE (2000), DURATION_S (20), VUS (pre-allocated, 100), MAX_VUS (400),
 * REFUSED_P99_MS (5), ADMITTED_P99_MS (250), POLITE_VUS (20), POLITE_S (10), RETRY_OK (0.9).
 */
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  BODY, ENDPOINT, TREND_STATS, describe, header, mustGetEndpoint, num, patchEndpoint, requireReady, restoring, scoreHeaders,
  scoreUrl,
} from './lib.js';

const SET_LIMIT = (__ENV.SET_LIMIT || '1') !== '0';
const LIMIT = num('LIMIT', SET_LIMIT ? 200 : 0);
const BURST = num('BURST', LIMIT);
const DURATION_S = num('DURATION_S', 20);
const POLITE_S = num('POLITE_S', 10);

/** Time to answer of refused (429/503) and admitted (2xx) calls, apart. */
const refusedTime = new Trend('refused_duration', true);
const admittedTime = new Trend('admitted_duration', true);
/** Share of calls refused, tagged by scenario. */
const refused = new Rate('refused');
const admitted = new Counter('admitted');
/** A refusal without Retry-After breaks SPEC §4. */
const missingRetryAfter = new Rate('refused_without_retry_after');
/** Anything but 2xx, 429 and 503 (another gateway error, or no answer at all). */
const otherFailures = new Rate('other_failures');
/** Polite callers' retries made after sleeping Retry-After: admitted or not. */
const retryAdmitted = new Rate('retry_after_admitted');
const retryAfterSeconds = new Trend('retry_after_seconds');

/** @type {Record<string, string[]>} */
const thresholds = {
  'refused{scenario:flood}': ['rate>0'],
  // The polite callers met the limit too, or their retries prove nothing.
  'refused{scenario:polite}': ['rate>0'],
  refused_duration: [`p(99)<${num('REFUSED_P99_MS', 5)}`],
  admitted_duration: [`p(99)<${num('ADMITTED_P99_MS', 250)}`],
  refused_without_retry_after: ['rate==0'],
  other_failures: ['rate==0'],
  retry_after_admitted: [`rate>=${num('RETRY_OK', 0.9)}`],
};
if (LIMIT > 0) thresholds['admitted{scenario:flood}'] = [`count<=${Math.ceil((LIMIT * DURATION_S + BURST) * 1.1)}`];

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    flood: {
      executor: 'constant-arrival-rate',
      rate: num('RATE', 2000),
      timeUnit: '1s',
      duration: `${DURATION_S}s`,
      preAllocatedVUs: num('VUS', 100),
      maxVUs: num('MAX_VUS', 400),
      exec: 'flood',
    },
    polite: {
      executor: 'constant-vus',
      vus: num('POLITE_VUS', 20),
      duration: `${POLITE_S}s`,
      // After the flood and its graceful stop (30 s at most; in practice its calls end at once).
      startTime: `${DURATION_S + 2}s`,
      exec: 'polite',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds,
};

export function setup() {
  requireReady();
  if (!SET_LIMIT) return { restore: null };
  const { view, etag } = mustGetEndpoint(ENDPOINT);
  const applied = { rate_limit: { requests_per_second: LIMIT, burst: BURST, per: 'endpoint' } };
  const res = patchEndpoint(ENDPOINT, applied, etag);
  if (res.status !== 200) fail(`PATCH ${ENDPOINT} rate_limit: ${describe(res)}`);
  return { restore: restoring(view.config, applied) };
}

export function teardown(/** @type {{ restore: unknown }} */ data) {
  if (!data.restore) return;
  const res = patchEndpoint(ENDPOINT, data.restore);
  if (res.status !== 200) console.warn(`could not restore ${ENDPOINT}'s rate_limit: ${describe(res)}; set it back with PATCH ${JSON.stringify(data.restore)}`);
}

/** One scoring call, measured and classified: admitted (2xx), or refused with Retry-After seconds. */
function score() {
  const res = http.post(scoreUrl(), BODY, {
    headers: scoreHeaders(),
    tags: { name: 'score' },
    responseCallback: http.expectedStatuses({ min: 200, max: 299 }, 429, 503),
  });
  if (res.status === 429 || res.status === 503) {
    refused.add(true);
    refusedTime.add(res.timings.duration);
    otherFailures.add(false);
    const retryAfter = header(res, 'retry-after');
    missingRetryAfter.add(!retryAfter);
    check(res, { 'refusal has the JSON error body': (r) => typeof r.body === 'string' && r.body.includes('"error"') });
    return { ok: false, retryAfter: Math.max(Number(retryAfter) || 1, 0) };
  }
  refused.add(false);
  const ok = res.status >= 200 && res.status < 300;
  otherFailures.add(!ok, { status: String(res.status) });
  if (ok) {
    admitted.add(1);
    admittedTime.add(res.timings.duration);
  }
  return { ok, retryAfter: 0 };
}

export function flood() {
  score();
}

export function polite() {
  const first = score();
  if (first.retryAfter === 0) return;
  retryAfterSeconds.add(first.retryAfter);
  sleep(Math.min(first.retryAfter, 30));
  retryAdmitted.add(score().ok);
}
