// @ts-check
/**
 * Mirror: shadow traffic set through the admin API, traffic sent, then the shadow report
 * (`GET /admin/endpoints/{ENDPOINT}/mirror`) read and judged.
 *
 * setup() PATCHes ENDPOINT to `{"traffic": TRAFFIC, "mirror_traffic": {SHADOW: PERCENT}}`
 * (for the demo: everything live on blue, 20% copied to green; the shadow may not have live
 * traffic, SPEC §2), clearing any mirror first so the report starts empty; teardown() puts
 * traffic and mirror back as they were. Scenario `score` sends RATE calls a second for
 * DURATION_S; then `report` waits SETTLE_S for the last copies and reads the report into
 * gauges, which the thresholds judge:
 *
 * - `mirror_sampled_share`: copies taken (mirrored + skipped) over calls sent, within
 *   TOLERANCE of PERCENT/100 (default 4.5 binomial standard deviations);
 * - `mirror_skipped_share`: copies skipped (shadow had no spare capacity, body over
 *   `mirror_max_body_bytes`) over calls sent, at most MAX_SKIPPED (0.01);
 * - `mirror_compared` > 0 and `mirror_shadow_error_rate` at most MAX_SHADOW_ERRORS (0);
 * - `mirror_agreement_rate` at least MIN_AGREEMENT (0: the demo's two models name themselves
 *   in every answer, so they never agree; set it for a real shadow);
 * - `mirror_unexpected_fields`: fields that differ (and are not noise) other than
 *   ALLOWED_DIFFS, must be 0: for the demo, only the self-naming fields differ;
 * - and for the callers: no scoring call failed, every answer came from a live deployment
 *   (`served_by_live`: a shadow's answer never reaches the client, SPEC §3).
 *
 *   k6 run load-tests/k6/mirror.js
 * Env: BASE_URL, ADMIN_URL, KEY, ADMIN_KEY, ENDPOINT, BODY (lib.js); TRAFFIC
 * ({"blue":100,"green":0}), SHADOW (green), PERCENT (20), RATE (50), DURATION_S (20),
 * SETTLE_S (3), TOLERANCE, MAX_SKIPPED (0.01), MAX_SHADOW_ERRORS (0), MIN_AGREEMENT (0),
 * ALLOWED_DIFFS ($.deployment,$.predictions[*].model; empty: none may differ).
 */
import http from 'k6/http';
import { check, fail, sleep } from 'k6';
import { Gauge, Rate } from 'k6/metrics';
import {
  BODY, ENDPOINT, TREND_STATS, adminGet, deploymentOf, describe, json, mustGetEndpoint, num, patchEndpoint,
  requireReady, restoring, scoreHeaders, scoreUrl,
} from './lib.js';

/** @type {Record<string, number>} */
const TRAFFIC = json('TRAFFIC', { blue: 100, green: 0 });
const SHADOW = __ENV.SHADOW || 'green';
const PERCENT = num('PERCENT', 20);
const RATE = num('RATE', 50);
const DURATION_S = num('DURATION_S', 20);
const SETTLE_S = num('SETTLE_S', 3);
const ALLOWED_DIFFS = (__ENV.ALLOWED_DIFFS === undefined ? '$.deployment,$.predictions[*].model' : __ENV.ALLOWED_DIFFS)
  .split(',').map((s) => s.trim()).filter(Boolean);
/** Calls `score` starts (a constant arrival rate with no dropped iteration starts exactly these). */
const SENT = RATE * DURATION_S;
const P = PERCENT / 100;
const TOL = num('TOLERANCE', Math.max(0.01, 4.5 * Math.sqrt((P * (1 - P)) / SENT)));

const servedByLive = new Rate('served_by_live');
const reportOk = new Rate('mirror_report_ok');
const sampledShare = new Gauge('mirror_sampled_share');
const skippedShare = new Gauge('mirror_skipped_share');
const compared = new Gauge('mirror_compared');
const shadowErrorRate = new Gauge('mirror_shadow_error_rate');
const agreement = new Gauge('mirror_agreement_rate');
const unexpectedFields = new Gauge('mirror_unexpected_fields');
const shadowP99 = new Gauge('mirror_shadow_p99_ms');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    score: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: `${DURATION_S}s`,
      preAllocatedVUs: num('VUS', 20),
      maxVUs: num('MAX_VUS', 100),
      exec: 'score',
    },
    report: { executor: 'per-vu-iterations', vus: 1, iterations: 1, startTime: `${DURATION_S + SETTLE_S}s`, exec: 'report' },
  },
  summaryTrendStats: TREND_STATS,
  thresholds: {
    'http_req_failed{scenario:score}': ['rate==0'],
    served_by_live: ['rate==1'],
    dropped_iterations: ['count==0'],
    mirror_report_ok: ['rate==1'],
    mirror_sampled_share: [`value>=${Math.max(0, P - TOL).toFixed(4)}`, `value<=${Math.min(1, P + TOL).toFixed(4)}`],
    mirror_skipped_share: [`value<=${num('MAX_SKIPPED', 0.01)}`],
    mirror_compared: ['value>0'],
    mirror_shadow_error_rate: [`value<=${num('MAX_SHADOW_ERRORS', 0)}`],
    mirror_agreement_rate: [`value>=${num('MIN_AGREEMENT', 0)}`],
    mirror_unexpected_fields: ['value==0'],
  },
};

export function setup() {
  requireReady();
  const { view } = mustGetEndpoint(ENDPOINT);
  const applied = { traffic: TRAFFIC, mirror_traffic: { [SHADOW]: PERCENT } };
  const restore = restoring(view.config, applied);
  if (view.config.mirror_traffic && Object.keys(view.config.mirror_traffic).length > 0) {
    // A mirror set to the same thing again keeps its report; clearing it first starts a new one.
    const res = patchEndpoint(ENDPOINT, { mirror_traffic: null });
    if (res.status !== 200) fail(`PATCH ${ENDPOINT} mirror_traffic null: ${describe(res)}`);
  }
  const res = patchEndpoint(ENDPOINT, applied);
  if (res.status !== 200) fail(`PATCH ${ENDPOINT} traffic ${JSON.stringify(TRAFFIC)} mirror ${SHADOW}=${PERCENT}: ${describe(res)}`);
  return { restore };
}

export function teardown(/** @type {{ restore: Record<string, unknown> }} */ data) {
  const res = patchEndpoint(ENDPOINT, data.restore);
  if (res.status !== 200) console.warn(`could not restore ${ENDPOINT}: PATCH ${JSON.stringify(data.restore)} answered ${describe(res)}`);
}

export function score() {
  const res = http.post(scoreUrl(), BODY, { headers: scoreHeaders(), tags: { name: 'score' } });
  if (check(res, { 'scored: status 200': (r) => r.status === 200 })) servedByLive.add((TRAFFIC[deploymentOf(res)] || 0) > 0);
}

export function report() {
  /** @type {any} */
  let r = null;
  // Copies still in flight are not counted yet: wait (a little) for them.
  for (let i = 0; i < 10; i++) {
    const got = adminGet(`/admin/endpoints/${ENDPOINT}/mirror`, 'mirror_report');
    r = got.status === 200 ? got.body : null;
    if (!r || !r.in_flight) break;
    sleep(0.5);
  }
  reportOk.add(!!r);
  if (!r) return;
  const skipped = (r.skipped.skipped_budget || 0) + (r.skipped.skipped_body || 0);
  sampledShare.add((r.mirrored + skipped) / SENT);
  skippedShare.add(skipped / SENT);
  compared.add(r.compared);
  // No copy answered at all is as bad as every copy failing.
  shadowErrorRate.add(r.shadow_error_rate === null ? 1 : r.shadow_error_rate);
  agreement.add(r.agreement_rate === null ? -1 : r.agreement_rate);
  /** @type {{ path: string, noisy: boolean }[]} */
  const fields = r.fields || [];
  const unexpected = fields.filter((f) => !f.noisy && !ALLOWED_DIFFS.includes(f.path));
  unexpectedFields.add(unexpected.length);
  if (r.latency && r.latency.shadow && r.latency.shadow.p99_ms !== null) shadowP99.add(r.latency.shadow.p99_ms);
  console.log(`mirror report: mirrored ${r.mirrored} of ${SENT} sent, skipped ${skipped}, compared ${r.compared}, `
    + `agreement ${r.agreement_rate}, shadow error rate ${r.shadow_error_rate}, differing fields `
    + `${fields.map((f) => `${f.path}${f.noisy ? ' (noise)' : ''}`).join(', ') || 'none'}`
    + `${unexpected.length ? ` — unexpected: ${unexpected.map((f) => f.path).join(', ')}` : ''}`);
}
