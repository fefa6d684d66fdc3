// @ts-check
/**
 * Traffic split: counts which deployment answered (`azureml-model-deployment`), one custom
 * Counter per deployment, no thresholds: read the shares off the summary and compare them
 * with the endpoint's `traffic`.
 *   k6 run -e KEY=<demo key> -e DEPLOYMENTS=blue,green load-tests/k6/split.js
 * Env: BASE_URL, ENDPOINT, KEY, BODY as in smoke.js; DEPLOYMENTS (blue,green),
 * ITERATIONS (1000), VUS (10). Set STICKY_HEADER/STICKY_VALUE to send a sticky-session header.
 */
import http from 'k6/http';
import { fail } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ENDPOINT = __ENV.ENDPOINT || 'demo';
const KEY = __ENV.KEY || '';
const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });
const DEPLOYMENTS = (__ENV.DEPLOYMENTS || 'blue,green').split(',').map((s) => s.trim()).filter(Boolean);

// Metrics must be created in the init context, so the deployment names are known up front.
/** @type {Record<string, Counter>} */
const perDeployment = {};
for (const d of DEPLOYMENTS) perDeployment[d] = new Counter(`deployment_${d.replace(/[^a-zA-Z0-9_]/g, '_')}`);
/** Answers naming a deployment not in DEPLOYMENTS, or none at all. */
const other = new Counter('deployment_other');
const failed = new Counter('non_200');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    split: {
      executor: 'shared-iterations',
      vus: Number(__ENV.VUS || 10),
      iterations: Number(__ENV.ITERATIONS || 1000),
      maxDuration: '5m',
    },
  },
};

export function setup() {
  if (!KEY) fail('set KEY (the demo key printed by `npm start`)');
}

export default function () {
  /** @type {Record<string, string>} */
  const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` };
  if (__ENV.STICKY_HEADER) headers[__ENV.STICKY_HEADER] = __ENV.STICKY_VALUE || `user-${exec.vu.idInTest}`;
  const res = http.post(`${BASE_URL}/endpoints/${ENDPOINT}/score`, BODY, { headers, tags: { name: 'score' } });
  if (res.status !== 200) failed.add(1);
  let deployment = '';
  for (const k of Object.keys(res.headers)) if (k.toLowerCase() === 'azureml-model-deployment') deployment = res.headers[k] ?? '';
  const counter = perDeployment[deployment];
  if (counter) counter.add(1);
  else other.add(1, { deployment: deployment || '(none)' });
}
