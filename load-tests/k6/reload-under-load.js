// @ts-check
/**
 * Reload under load: scoring at a constant rate while the config *file* is reloaded, by
 * hand, during the run: `kill -HUP <gateway pid>`, or edit and save the config file the demo
 * prints (change `traffic`, say). Changes through the admin API are swap.js's part.
 *
 * Thresholds: no scoring call failed (`http_req_failed{scenario:score}`: no 5xx, no 4xx, no
 * refused connection while the gateway swapped configs), p99 under P99_MS, and the run saw
 * at least MIN_RELOADS successful reloads: the gateway's own counter
 * (`switchyard_config_reloads_total{result="success"}` on ADMIN_URL/metrics) is read at the
 * start and after the load, so a run where nobody reloaded does not pass for one that
 * survived reloads. The Node counterpart with reloads done by the script is
 * `load-tests/live-edit.ts` (its reload window).
 *
 *   k6 run load-tests/k6/reload-under-load.js      (then reload a few times while it runs)
 * Env: BASE_URL, ADMIN_URL, KEY, ENDPOINT, BODY (lib.js); RATE (200), DURATION_S (60),
 * VUS (50), MAX_VUS (200), P99_MS (250), MIN_RELOADS (1).
 */
import http from 'k6/http';
import { check, fail } from 'k6';
import { Gauge } from 'k6/metrics';
import { ADMIN_URL, BODY, TREND_STATS, constantScoring, num, requireReady, scoreHeaders, scoreUrl } from './lib.js';

const DURATION_S = num('DURATION_S', 60);
const reloadsSeen = new Gauge('config_reloads_seen');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    score: /** @type {import('k6/options').Scenario} */ (constantScoring(DURATION_S)),
    count: { executor: 'per-vu-iterations', vus: 1, iterations: 1, startTime: `${DURATION_S + 1}s`, exec: 'count' },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    'http_req_failed{scenario:score}': ['rate==0'],
    'http_req_duration{scenario:score}': [`p(99)<${num('P99_MS', 250)}`],
    config_reloads_seen: [`value>=${num('MIN_RELOADS', 1)}`],
    dropped_iterations: ['count==0'],
  },
};

/** Successful config loads so far, from the gateway's Prometheus text (summed over series). */
function reloads() {
  const res = http.get(`${ADMIN_URL}/metrics`, { tags: { name: 'metrics' } });
  if (res.status !== 200 || typeof res.body !== 'string') fail(`${ADMIN_URL}/metrics: ${res.status}`);
  let n = 0;
  for (const line of String(res.body).split('\n')) {
    if (line.startsWith('switchyard_config_reloads_total{') && line.includes('result="success"')) n += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return n;
}

export function setup() {
  requireReady();
  console.log(`reload the config now and then during the next ${DURATION_S} s (kill -HUP, or edit the config file)`);
  return { before: reloads() };
}

export function score() {
  const res = http.post(scoreUrl(), BODY, { headers: scoreHeaders(), tags: { name: 'score' } });
  check(res, { 'scored: status 200': (r) => r.status === 200 });
}

export function count(/** @type {{ before: number }} */ data) {
  reloadsSeen.add(reloads() - data.before);
}
