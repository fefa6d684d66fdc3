// @ts-check
/**
 * Swap under load: a blue/green swap done through the admin API while callers keep
 * arriving, as `az ml online-endpoint update --traffic` is used. Two scenarios at once:
 *
 * - `score`: scoring calls at a constant arrival rate (RATE/s) for the whole run.
 * - `shift`: one admin client that moves ENDPOINT's traffic from FROM to TO in STEPS (TO's
 *   share at each step), STEP_S seconds apart: GET the endpoint for its ETag, then
 *   `PATCH /admin/endpoints/{ENDPOINT}` `{"traffic":{FROM:100-p,TO:p}}` with `If-Match`.
 *   After a step that puts everything on one side (p = 100 or 0) it scores until APPLIED_RUN
 *   answers in a row come from that side, and records how long that took after the PATCH's
 *   200 (`swap_applied`).
 *
 * Thresholds: not one scoring call failed (`http_req_failed{scenario:score}` rate 0: no 5xx,
 * no 4xx, no connection error while the split changed under it); their p99 stays under
 * P99_MS; every PATCH answered 200 (`swap_patch_ok`; a 412 means someone else edited the
 * endpoint meanwhile); the all-on-one-side steps were in force within APPLIED_MS; the
 * arrival rate was held. teardown() puts the traffic back as it was.
 *
 *   k6 run load-tests/k6/swap.js
 * Env: BASE_URL, ADMIN_URL, KEY, ADMIN_KEY, ENDPOINT, BODY (lib.js); FROM (blue), TO (green),
 * STEPS (25,50,75,100,50,0), STEP_S (3), RATE (200), VUS (50), MAX_VUS (200), P99_MS (250),
 * APPLIED_MS (1000), APPLIED_RUN (20).
 * ENDPOINT's live traffic may name only FROM and TO with weight above 0 (others at 0 are fine).
 */
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import {
  BODY, ENDPOINT, TREND_STATS, constantScoring, deploymentOf, describe, getEndpoint, mustGetEndpoint, num, patchEndpoint,
  requireReady, restoring, scoreHeaders, scoreUrl,
} from './lib.js';

const FROM = __ENV.FROM || 'blue';
const TO = __ENV.TO || 'green';
const STEPS = (__ENV.STEPS || '25,50,75,100,50,0').split(',').map((s) => Number(s.trim()));
const STEP_S = num('STEP_S', 3);
const APPLIED_RUN = num('APPLIED_RUN', 20);
/** Load runs one step before the first PATCH and one after the last. */
const DURATION_S = (STEPS.length + 2) * STEP_S;

const patchOk = new Rate('swap_patch_ok');
const patchTime = new Trend('swap_patch_duration', true);
const applied = new Trend('swap_applied', true);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    score: /** @type {import('k6/options').Scenario} */ (constantScoring(DURATION_S)),
    shift: {
      executor: 'per-vu-iterations',
      vus: 1,
      iterations: 1,
      startTime: `${STEP_S}s`,
      maxDuration: `${DURATION_S + 30}s`,
      exec: 'shift',
    },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    'http_req_failed{scenario:score}': ['rate==0'],
    'http_req_duration{scenario:score}': [`p(99)<${num('P99_MS', 250)}`],
    // The probes after an all-on-one-side step are scoring calls too: none may fail either.
    'http_req_failed{name:probe}': ['rate==0'],
    swap_patch_ok: ['rate==1'],
    swap_applied: [`max<${num('APPLIED_MS', 1000)}`],
    dropped_iterations: ['count==0'],
  },
};

export function setup() {
  requireReady();
  if (STEPS.some((p) => !Number.isInteger(p) || p < 0 || p > 100)) fail(`STEPS must be integers 0..100, got ${__ENV.STEPS}`);
  const traffic = mustGetEndpoint(ENDPOINT).view.config.traffic || {};
  for (const [d, w] of Object.entries(traffic)) {
    if (d !== FROM && d !== TO && Number(w) > 0) fail(`${ENDPOINT} sends ${w}% to ${d}: the swap moves only ${FROM} and ${TO}`);
  }
  return { restore: restoring({ traffic }, { traffic: { [FROM]: 0, [TO]: 0 } }) };
}

export function teardown(/** @type {{ restore: Record<string, unknown> }} */ data) {
  const res = patchEndpoint(ENDPOINT, data.restore);
  if (res.status !== 200) console.warn(`could not restore ${ENDPOINT}: PATCH ${JSON.stringify(data.restore)} answered ${describe(res)}`);
}

export function score() {
  const res = http.post(scoreUrl(), BODY, { headers: scoreHeaders(), tags: { name: 'score' } });
  check(res, { 'scored: status 200': (r) => r.status === 200 });
}

/**
 * Score until APPLIED_RUN answers in a row come from `side`; when the first call of that run
 * was sent, in ms after `since` (so the time the run itself takes is not counted), or
 * Infinity after 10 s.
 */
function timeUntilServedBy(/** @type {string} */ side, /** @type {number} */ since) {
  let run = 0;
  let runStart = 0;
  while (Date.now() - since < 10_000) {
    const sent = Date.now();
    const res = http.post(scoreUrl(), BODY, { headers: scoreHeaders(), tags: { name: 'probe' } });
    if (res.status === 200 && deploymentOf(res) === side) {
      if (run++ === 0) runStart = sent;
      if (run === APPLIED_RUN) return runStart - since;
    } else {
      run = 0;
    }
  }
  return Infinity;
}

export function shift() {
  for (const p of STEPS) {
    const stepStart = Date.now();
    const { etag } = getEndpoint(ENDPOINT);
    const res = patchEndpoint(ENDPOINT, { traffic: { [FROM]: 100 - p, [TO]: p } }, etag);
    const ok = res.status === 200;
    const answeredAt = Date.now();
    patchOk.add(ok, { step: String(p) });
    patchTime.add(res.timings.duration);
    if (!ok) console.warn(`PATCH traffic ${FROM}=${100 - p} ${TO}=${p}: ${describe(res)}`);
    if (ok && (p === 100 || p === 0)) applied.add(timeUntilServedBy(p === 100 ? TO : FROM, answeredAt), { step: String(p) });
    sleep(Math.max(0, STEP_S - (Date.now() - stepStart) / 1000));
  }
}
