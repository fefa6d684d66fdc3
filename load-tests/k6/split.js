// @ts-check
/**
 * Split accuracy: ITERATIONS scoring calls, each counted against the deployment that
 * answered (`azureml-model-deployment`), with a threshold per deployment on its share: within
 * TOLERANCE of its weight in TRAFFIC. setup() reads the endpoint's live `traffic` through the
 * admin API and stops if it is not TRAFFIC, so the thresholds judge the split actually set.
 *
 * The tolerance defaults to 4.5 standard deviations of a binomial share over ITERATIONS
 * requests (±3.0 points for 90/10 over 2000): a gateway splitting by weighted random passes
 * all but about one run in 150,000; one splitting deterministically lands far inside it.
 *
 * With STICKY_HEADER (the endpoint's `sticky.header`), each call carries one of USERS
 * caller ids, and the check is stickiness instead: `sticky_moves` counts calls whose caller
 * was answered by another deployment than its first (must be 0). Shares are not judged then
 * (a few callers cannot spread 90/10).
 *
 *   k6 run load-tests/k6/split.js
 *   k6 run -e TRAFFIC='{"blue":50,"green":50}' load-tests/k6/split.js   (after switchyard traffic demo blue=50 green=50)
 * Env: BASE_URL, ADMIN_URL, KEY, ADMIN_KEY, ENDPOINT, BODY (lib.js); TRAFFIC
 * ({"blue":90,"green":10}, the demo's), ITERATIONS (2000), VUS (10), TOLERANCE (absolute, e.g.
 * 0.02; default as above), CHECK_LIVE (1: compare TRAFFIC with the live config; 0 without
 * admin access), STICKY_HEADER, USERS (50).
 */
import http from 'k6/http';
import { fail } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate } from 'k6/metrics';
import {
  BODY, ENDPOINT, TREND_STATS, deploymentOf, json, mustGetEndpoint, num, requireReady, scoreHeaders, scoreUrl,
} from './lib.js';
import { summarize } from './summary.js';

/** @type {Record<string, number>} */
const TRAFFIC = json('TRAFFIC', { blue: 90, green: 10 });
const ITERATIONS = num('ITERATIONS', 2000);
const STICKY_HEADER = __ENV.STICKY_HEADER || '';
const USERS = num('USERS', 50);
const total = Object.values(TRAFFIC).reduce((s, w) => s + w, 0);

/** Share of answers from each deployment, tagged `deployment`: one sub-metric threshold per deployment. */
const share = new Rate('deployment_share');
/** Answers from a deployment not in TRAFFIC, or naming none. */
const unexpected = new Counter('deployment_unexpected');
const stickyMoves = new Counter('sticky_moves');

/** @type {Record<string, string[]>} */
const thresholds = {
  http_req_failed: ['rate==0'],
  deployment_unexpected: ['count==0'],
};
if (STICKY_HEADER) {
  thresholds.sticky_moves = ['count==0'];
} else {
  for (const [d, w] of Object.entries(TRAFFIC)) {
    const p = total > 0 ? w / total : 0;
    const tol = num('TOLERANCE', Math.max(0.005, 4.5 * Math.sqrt((p * (1 - p)) / ITERATIONS)));
    // A 0% deployment must get nothing, a 100% one everything: no tolerance there.
    thresholds[`deployment_share{deployment:${d}}`] = p === 0 ? ['rate==0'] : p === 1 ? ['rate==1']
      : [`rate>=${Math.max(0, p - tol).toFixed(4)}`, `rate<=${Math.min(1, p + tol).toFixed(4)}`];
  }
}

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    split: { executor: 'shared-iterations', vus: num('VUS', 10), iterations: ITERATIONS, maxDuration: '5m' },
  },
  summaryTrendStats: TREND_STATS,
  thresholds,
};

export function setup() {
  requireReady();
  if (total !== 100 && total !== 0) fail(`TRAFFIC must sum to 100, got ${total}`);
  if ((__ENV.CHECK_LIVE || '1') === '1') {
    const config = mustGetEndpoint(ENDPOINT).view.config;
    const sticky = config.sticky && config.sticky.header;
    if (STICKY_HEADER && (sticky || '').toLowerCase() !== STICKY_HEADER.toLowerCase()) {
      fail(`${ENDPOINT} is sticky on ${sticky ? `header ${sticky}` : 'nothing (no sticky.header)'}, not STICKY_HEADER=${STICKY_HEADER}`);
    }
    const live = config.traffic || {};
    const names = new Set([...Object.keys(live), ...Object.keys(TRAFFIC)]);
    for (const d of names) {
      if ((live[d] || 0) !== (TRAFFIC[d] || 0)) {
        fail(`${ENDPOINT}'s live traffic is ${JSON.stringify(live)}, not TRAFFIC=${JSON.stringify(TRAFFIC)}: set TRAFFIC to it`);
      }
    }
  }
}

/** Sticky mode: the deployment each caller id was first answered by (per VU: ids are split by VU). */
/** @type {Record<string, string>} */
const firstSeen = {};

export default function () {
  /** @type {Record<string, string>} */
  const extra = {};
  let user = '';
  if (STICKY_HEADER) {
    // Each VU owns the ids ≡ its number (mod VUs), so a caller's history stays in one VU.
    const vus = exec.instance.vusInitialized || 1;
    const slot = Math.floor(Math.random() * Math.max(1, Math.floor(USERS / vus)));
    user = `k6-user-${slot * vus + exec.vu.idInTest}`;
    extra[STICKY_HEADER] = user;
  }
  const res = http.post(scoreUrl(), BODY, { headers: scoreHeaders(extra), tags: { name: 'score' } });
  if (res.status !== 200) return;
  const answered = deploymentOf(res);
  if (!(answered in TRAFFIC)) unexpected.add(1, { deployment: answered || '(none)' });
  for (const d of Object.keys(TRAFFIC)) share.add(answered === d, { deployment: d });
  if (user) {
    const first = firstSeen[user];
    if (first === undefined) firstSeen[user] = answered;
    else if (first !== answered) stickyMoves.add(1);
  }
}

/**
 * The shares against the weights, then every threshold (summary.js).
 * @param {import('./summary.js').SummaryData} data
 */
export function handleSummary(data) {
  const lines = [`split of ${ENDPOINT} over ${ITERATIONS} calls${STICKY_HEADER ? ` (sticky on ${STICKY_HEADER})` : ''}:`];
  for (const d of Object.keys(TRAFFIC)) {
    const m = data.metrics[`deployment_share{deployment:${d}}`];
    const observed = m && m.values.rate !== undefined ? `${(m.values.rate * 100).toFixed(2)}%` : '–';
    lines.push(`  ${d.padEnd(20)} weight ${String(TRAFFIC[d]).padStart(3)}%  answered ${observed.padStart(7)}`);
  }
  return summarize(data, lines);
}
