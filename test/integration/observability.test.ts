import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { bearer, call, type Reply, waitFor } from '../helpers/http.ts';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';

// SPEC §6 from outside (issue 6 item 9): switchyard_requests_total, the duration histogram
// and every field of the access line, after a known mix of requests to a real gateway.

const KEY = 'observability-key';
let up: TestUpstream;
let gw: TestGateway;
const replies: { kind: '200' | '401' | '404'; reply: Reply }[] = [];

before(async () => {
  up = await startUpstream('blue');
  gw = await startGateway({
    endpoints: { cars: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [up.url] } } } },
  });
  const ok = () => call(`${gw.url}/endpoints/cars/score?debug=1&token=not-logged`, { body: '{"x":1}', headers: bearer(KEY) });
  const noKey = () => call(`${gw.url}/endpoints/cars/score`, { body: '{}' });
  const unknown = () => call(`${gw.url}/endpoints/nope/score`, { body: '{}', headers: bearer(KEY) });
  for (let i = 0; i < 3; i++) replies.push({ kind: '200', reply: await ok() });
  for (let i = 0; i < 2; i++) replies.push({ kind: '401', reply: await noKey() });
  replies.push({ kind: '404', reply: await unknown() });
  await waitFor(() => gw.logs.access().length >= replies.length, 'access lines');
});
after(async () => {
  await gw.close();
  await up.close();
});

interface Sample { readonly name: string; readonly labels: Record<string, string>; readonly value: number }

/** The Prometheus text exposition of /metrics, as samples. */
async function scrape(): Promise<Sample[]> {
  const r = await call(`${gw.adminUrl}/metrics`);
  assert.equal(r.status, 200);
  return r.body.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(l);
    assert.ok(m, `a sample line: ${l}`);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    return { name: m[1]!, labels, value: Number(m[3]) };
  });
}

/** The samples of `name` whose labels include `want`. */
function find(samples: Sample[], name: string, want: Record<string, string>): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === v));
}

const total = (ss: Sample[]): number => ss.reduce((n, s) => n + s.value, 0);

test('switchyard_requests_total counts each request once by endpoint, deployment and code', async () => {
  const s = await scrape();
  assert.equal(replies.filter((r) => r.kind === '200').every((r) => r.reply.status === 200), true);
  const name = 'switchyard_requests_total';
  assert.equal(total(find(s, name, { endpoint: 'cars', deployment: 'blue', code: '200' })), 3);
  assert.equal(total(find(s, name, { endpoint: 'cars', deployment: '', code: '401' })), 2, 'a 401 names the endpoint; no deployment was chosen');
  assert.equal(total(find(s, name, { endpoint: '', deployment: '', code: '404' })), 1, 'an unknown endpoint is not a label value');
  assert.equal(total(find(s, name, {})), 6, 'nothing else was counted');
  for (const x of find(s, name, {})) {
    for (const l of ['endpoint', 'deployment', 'code']) assert.ok(l in x.labels, `${l} label on ${JSON.stringify(x.labels)}`);
  }
});

test('switchyard_request_duration_seconds has bucket, sum and count series per endpoint and deployment', async () => {
  const s = await scrape();
  const h = 'switchyard_request_duration_seconds';
  for (const [labels, n] of [[{ endpoint: 'cars', deployment: 'blue' }, 3], [{ endpoint: 'cars', deployment: '' }, 2], [{ endpoint: '', deployment: '' }, 1]] as const) {
    const count = find(s, `${h}_count`, labels);
    assert.equal(count.length, 1, `one _count series for ${JSON.stringify(labels)}`);
    assert.equal(count[0]!.value, n);
    assert.deepEqual(Object.keys(count[0]!.labels).sort(), ['deployment', 'endpoint']);
    const sum = find(s, `${h}_sum`, labels);
    assert.equal(sum.length, 1);
    assert.ok(sum[0]!.value > 0 && sum[0]!.value < 60 * n, 'sum is a plausible number of seconds');
    const buckets = find(s, `${h}_bucket`, labels);
    assert.ok(buckets.length > 5, 'several buckets');
    const values = buckets.map((b) => b.value);
    assert.deepEqual(values, [...values].sort((a, b) => a - b), 'buckets are cumulative');
    assert.equal(buckets.find((b) => b.labels.le === '+Inf')?.value, n, '+Inf bucket equals the count');
  }
  // The histogram and the access lines measure the same thing.
  const lines = gw.logs.access().filter((l) => l.status === 200);
  const logged = lines.reduce((t, l) => t + (l.duration_ms as number), 0) / 1e3;
  const sum = find(s, `${h}_sum`, { endpoint: 'cars', deployment: 'blue' })[0]!.value;
  assert.ok(Math.abs(sum - logged) < 1e-5, `histogram sum ${sum} s equals the logged durations ${logged} s`);
});

const FIELDS = ['request_id', 'method', 'path', 'endpoint', 'deployment', 'status', 'duration_ms', 'auth', 'caller', 'client_ip', 'error', 'termination'];

test('one access line per request, with every SPEC §6 field', () => {
  const lines = gw.logs.access();
  assert.equal(lines.length, replies.length, 'one line per request');
  for (const [i, { kind, reply }] of replies.entries()) {
    const l = lines[i]!;
    assert.equal(l.request_id, reply.headers['x-request-id'], 'request_id is the x-request-id the client got');
    assert.equal(l.method, 'POST');
    assert.equal(l.status, reply.status);
    assert.equal(String(l.status), kind);
    assert.equal(typeof l.duration_ms, 'number');
    assert.ok((l.duration_ms as number) >= 0);
    assert.equal(l.client_ip, '127.0.0.1');
    assert.equal(l.termination, 'completed');
    assert.equal(l.msg, 'request');
    const extra = Object.keys(l).filter((k) => !FIELDS.includes(k) && !['level', 'time', 'pid', 'hostname', 'msg', 'service', 'throttle'].includes(k));
    assert.deepEqual(extra, [], 'no field outside SPEC §6');
  }
  const [ok, noKey, unknown] = [lines[0]!, lines[3]!, lines[5]!];
  assert.deepEqual(
    { path: ok.path, endpoint: ok.endpoint, deployment: ok.deployment, auth: ok.auth, caller: ok.caller, error: ok.error },
    { path: '/endpoints/cars/score', endpoint: 'cars', deployment: 'blue', auth: 'key', caller: 'primary', error: undefined },
    'a served request: path without the query, who called (key slot, never the key), which deployment',
  );
  assert.deepEqual(
    { path: noKey.path, endpoint: noKey.endpoint, deployment: noKey.deployment, auth: noKey.auth, caller: noKey.caller, error: noKey.error },
    { path: '/endpoints/cars/score', endpoint: 'cars', deployment: undefined, auth: undefined, caller: undefined, error: 'Unauthorized' },
  );
  assert.deepEqual(
    { path: unknown.path, endpoint: unknown.endpoint, deployment: unknown.deployment, error: unknown.error },
    { path: '/endpoints/nope/score', endpoint: undefined, deployment: undefined, error: 'EndpointNotFound' },
  );
  const raw = gw.logs.raw.join('\n');
  assert.ok(!raw.includes(KEY), 'the key is in no log line');
  assert.ok(!raw.includes('not-logged'), 'the query string is not logged');
});
