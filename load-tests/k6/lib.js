// @ts-check
/**
 * What every k6 script here shares: the environment (BASE_URL, ADMIN_URL, KEY, ADMIN_KEY,
 * ENDPOINT, BODY), the scoring request, a case-blind header lookup, and the admin API calls
 * (GET an endpoint with its ETag, PATCH/PUT/DELETE with If-Match).
 *
 * The defaults are what `npm start` serves when started the way README.md here says:
 *   SWITCHYARD_DEMO_KEY=k6-demo-key-for-load-tests SWITCHYARD_ADMIN_KEY=k6-admin-key-for-load-tests npm start
 * so `k6 run load-tests/k6/<name>.js` works against it with no `-e` at all. Against anything
 * else, pass the real values: a wrong KEY shows as 401s, which every script's thresholds fail.
 */
import http from 'k6/http';
import { fail } from 'k6';

export const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
export const ADMIN_URL = __ENV.ADMIN_URL || 'http://127.0.0.1:9090';
export const KEY = __ENV.KEY || 'k6-demo-key-for-load-tests';
export const ADMIN_KEY = __ENV.ADMIN_KEY || 'k6-admin-key-for-load-tests';
export const ENDPOINT = __ENV.ENDPOINT || 'demo';
export const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });

/** p(99) is what the thresholds judge, so the end-of-test summary shows it too. */
export const TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'];

/** A number from the environment, or `fallback` when unset; a typo fails the run rather than becoming NaN. */
export function num(/** @type {string} */ name, /** @type {number} */ fallback) {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) fail(`${name}=${raw} is not a number`);
  return n;
}

/** JSON from the environment (`TRAFFIC='{"blue":90,"green":10}'`), or `fallback`. */
export function json(/** @type {string} */ name, /** @type {any} */ fallback) {
  const raw = __ENV[name];
  if (!raw) return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    return fail(`${name} is not JSON: ${String(err)}`);
  }
}

/** The scoring URL of an endpoint (ENDPOINT unless named) on the public listener. */
export function scoreUrl(endpoint = ENDPOINT, path = 'score') {
  return `${BASE_URL}/endpoints/${endpoint}/${path}`;
}

/**
 * Headers of a scoring call with KEY. Extra headers are added as given.
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>}
 */
export function scoreHeaders(extra) {
  return Object.assign({ 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` }, extra || {});
}

/**
 * A response header by name, whatever case k6 gives it (it canonicalises: `Retry-After`, `Etag`).
 * @param {{ headers: Record<string, string> }} res
 * @param {string} name
 * @returns {string | undefined}
 */
export function header(res, name) {
  const want = name.toLowerCase();
  for (const k of Object.keys(res.headers)) if (k.toLowerCase() === want) return res.headers[k];
  return undefined;
}

/** The deployment that answered (`azureml-model-deployment`, SPEC §3), '' when none. */
export function deploymentOf(/** @type {{ headers: Record<string, string> }} */ res) {
  return header(res, 'azureml-model-deployment') || '';
}

/** Fail setup() unless the gateway's admin listener says it is ready (no credentials needed). */
export function requireReady() {
  const res = http.get(`${ADMIN_URL}/readyz`, { tags: { name: 'readyz' }, responseCallback: http.expectedStatuses(200, 503) });
  if (res.status !== 200) {
    fail(`${ADMIN_URL}/readyz answered ${res.status || res.error}: start the gateway first (SWITCHYARD_DEMO_KEY=k6-demo-key-for-load-tests SWITCHYARD_ADMIN_KEY=k6-admin-key-for-load-tests npm start), or set ADMIN_URL`);
  }
}

/**
 * Admin API calls are not the traffic under test: every status counts as expected, so they
 * stay out of `http_req_failed`; callers judge the status themselves.
 * @param {string} name request tag
 * @param {Record<string, string>} [extra]
 */
function adminParams(name, extra) {
  return {
    headers: Object.assign({ Authorization: `Bearer ${ADMIN_KEY}`, 'Content-Type': 'application/json' }, extra || {}),
    tags: { name },
    responseCallback: http.expectedStatuses({ min: 100, max: 599 }),
  };
}

/**
 * GET /admin/endpoints/{name}: the view (config with keys redacted, live state) and its ETag.
 * @param {string} name
 * @returns {{ status: number, view: any, etag: string }}
 */
export function getEndpoint(name) {
  const res = http.get(`${ADMIN_URL}/admin/endpoints/${name}`, adminParams('admin_get'));
  let view = null;
  if (res.status === 200 && typeof res.body === 'string') view = JSON.parse(res.body);
  return { status: res.status, view, etag: header(res, 'etag') || '' };
}

/** Like {@link getEndpoint}, but setup() stops with a readable message unless it is 200. */
export function mustGetEndpoint(/** @type {string} */ name) {
  const got = getEndpoint(name);
  if (got.status === 401 || got.status === 403) fail(`GET ${ADMIN_URL}/admin/endpoints/${name}: ${got.status}; set ADMIN_KEY to an admin key of the gateway`);
  if (got.status !== 200) fail(`GET ${ADMIN_URL}/admin/endpoints/${name}: ${got.status || 'no answer'}`);
  return got;
}

/**
 * PATCH /admin/endpoints/{name} with a JSON merge patch (RFC 7396); `If-Match` when `etag` is given.
 * @param {string} name
 * @param {unknown} patch
 * @param {string} [etag]
 */
export function patchEndpoint(name, patch, etag) {
  /** @type {Record<string, string>} */
  const headers = { 'Content-Type': 'application/merge-patch+json' };
  if (etag) headers['If-Match'] = etag;
  return http.patch(`${ADMIN_URL}/admin/endpoints/${name}`, JSON.stringify(patch), adminParams('admin_patch', headers));
}

/** PUT /admin/endpoints/{name}: create (201) or replace (200) the endpoint with `config`. */
export function putEndpoint(/** @type {string} */ name, /** @type {unknown} */ config) {
  return http.put(`${ADMIN_URL}/admin/endpoints/${name}`, JSON.stringify(config), adminParams('admin_put'));
}

export function deleteEndpoint(/** @type {string} */ name) {
  return http.del(`${ADMIN_URL}/admin/endpoints/${name}`, null, adminParams('admin_delete'));
}

/** GET any admin path (the mirror report, /metrics); the body parsed as JSON when it is JSON. */
export function adminGet(/** @type {string} */ path, tag = 'admin_get') {
  const res = http.get(`${ADMIN_URL}${path}`, adminParams(tag));
  let body = null;
  try {
    if (typeof res.body === 'string') body = JSON.parse(res.body);
  } catch {
    body = null;
  }
  return { status: res.status, body, raw: typeof res.body === 'string' ? res.body : '' };
}

/**
 * What an admin call answered, for a message: status, error code and the first field
 * errors (the gateway's error messages never hold a key), never the request.
 */
export function describe(/** @type {{ status: number, body: unknown, error?: string }} */ res) {
  let what = '';
  try {
    const e = typeof res.body === 'string' ? JSON.parse(res.body).error : null;
    if (e) {
      /** @type {{ path: string, message: string }[]} */
      const details = e.details || [];
      what = ` ${e.code}: ${details.length ? details.slice(0, 3).map((d) => `${d.path}: ${d.message}`).join('; ') : e.message}`;
    }
  } catch {
    what = '';
  }
  return `${res.status || res.error || 'no answer'}${what}`;
}

/**
 * A key as a config value: `$` is the config's variable sign (`${VAR}`, `$$` a literal `$`),
 * and the admin API keeps `${...}` references as references, so a key holding one is escaped.
 */
export function literal(/** @type {string} */ s) {
  return s.split('$').join('$$');
}

/**
 * The merge patch (RFC 7396) that turns members a run changed back into what they were:
 * `before` holds each member's value before the run (undefined or null: it was absent, or
 * an empty map as the view shows an unset `mirror_traffic`), `applied` the value the run
 * set. A map member (traffic, mirror_traffic, rate_limit) is restored key by key, with null
 * for the keys the run added, because merging `{blue: 90}` into `{blue: 0, green: 100}`
 * would leave green in place.
 * @param {Record<string, unknown>} before
 * @param {Record<string, unknown>} applied
 * @returns {Record<string, unknown>}
 */
export function restoring(before, applied) {
  /** @type {Record<string, unknown>} */
  const patch = {};
  for (const [member, set] of Object.entries(applied)) {
    const was = before[member];
    const wasMap = was !== null && typeof was === 'object' && !Array.isArray(was);
    const empty = was === undefined || was === null || (wasMap && Object.keys(/** @type {object} */ (was)).length === 0);
    if (empty) {
      patch[member] = null;
    } else if (wasMap && set !== null && typeof set === 'object' && !Array.isArray(set)) {
      /** @type {Record<string, unknown>} */
      const m = Object.assign({}, /** @type {Record<string, unknown>} */ (was));
      for (const k of Object.keys(set)) if (!(k in m)) m[k] = null;
      patch[member] = m;
    } else {
      patch[member] = was;
    }
  }
  return patch;
}

/**
 * The constant-load scoring scenario that runs while something changes (a reload, a traffic
 * shift): RATE requests a second for `durationS`, VUs from VUS up to MAX_VUS, running `score`.
 */
export function constantScoring(/** @type {number} */ durationS) {
  return {
    executor: 'constant-arrival-rate',
    rate: num('RATE', 200),
    timeUnit: '1s',
    duration: `${durationS}s`,
    preAllocatedVUs: num('VUS', 50),
    maxVUs: num('MAX_VUS', 200),
    exec: 'score',
  };
}
