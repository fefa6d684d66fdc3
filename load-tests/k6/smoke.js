// @ts-check
/**
 * Smoke: a few scoring calls; each must answer 200 with `x-request-id` and
 * `azureml-model-deployment`.
 *   k6 run -e KEY=<demo key> load-tests/k6/smoke.js
 * Env: BASE_URL (http://127.0.0.1:8080), ENDPOINT (demo), KEY (required), BODY (JSON to score).
 */
import http from 'k6/http';
import { check, fail } from 'k6';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ENDPOINT = __ENV.ENDPOINT || 'demo';
const KEY = __ENV.KEY || '';
const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });

/** @type {import('k6/options').Options} */
export const options = {
  vus: 1,
  iterations: 5,
  thresholds: { checks: ['rate==1'], http_req_failed: ['rate==0'] },
};

export function setup() {
  if (!KEY) fail('set KEY (the demo key printed by `npm start`): k6 run -e KEY=... smoke.js');
}

/**
 * A response header by name, whatever the case k6 gives it.
 * @param {import('k6/http').RefinedResponse<import('k6/http').ResponseType | undefined>} res
 * @param {string} name lower-case header name
 * @returns {string | undefined}
 */
function header(res, name) {
  for (const k of Object.keys(res.headers)) if (k.toLowerCase() === name) return res.headers[k];
  return undefined;
}

export default function () {
  const res = http.post(`${BASE_URL}/endpoints/${ENDPOINT}/score`, BODY, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    tags: { name: 'score' },
  });
  check(res, {
    'status is 200': (r) => r.status === 200,
    'has x-request-id': (r) => !!header(r, 'x-request-id'),
    'has azureml-model-deployment': (r) => !!header(r, 'azureml-model-deployment'),
  });
}
