import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { assertGatewayError, call, type Reply } from '../helpers/http.ts';

const KEY = 'routing-test-key';
const AUTH = { authorization: `Bearer ${KEY}` };

let blue: TestUpstream;
let green: TestUpstream;
let boat: TestUpstream;
let gw: TestGateway;

before(async () => {
  blue = await startUpstream('blue');
  green = await startUpstream('green');
  boat = await startUpstream('boat');
  gw = await startGateway({
    server: { host_suffix: '.inference.test' },
    endpoints: {
      cars: {
        keys: { primary: KEY },
        traffic: { blue: 100, green: 0 },
        deployments: {
          blue: { instances: [blue.url], scoring_route: '/predict' },
          green: { instances: [green.url] },
        },
      },
      boats: {
        keys: { primary: KEY },
        traffic: { sail: 0 },
        deployments: { sail: { instances: [boat.url] } },
      },
    },
  });
});
after(async () => {
  await gw.close();
  await Promise.all([blue.close(), green.close(), boat.close()]);
});

function json(r: Reply): { deployment: string; url: string } {
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as { deployment: string; url: string };
}

test('azureml-model-deployment picks a deployment directly, even one at 0% traffic', async () => {
  const byTraffic = await call(`${gw.url}/endpoints/cars/v1/ping`, { headers: AUTH });
  assert.equal(json(byTraffic).deployment, 'blue');
  assert.equal(byTraffic.headers['azureml-model-deployment'], 'blue');

  const before = green.seen.length;
  const direct = await call(`${gw.url}/endpoints/cars/v1/ping`, { headers: { ...AUTH, 'azureml-model-deployment': 'green' } });
  assert.equal(json(direct).deployment, 'green');
  assert.equal(direct.headers['azureml-model-deployment'], 'green');
  assert.equal(green.seen.length, before + 1);
});

test('an unknown deployment is 404 DeploymentNotFound with the error body of SPEC §4', async () => {
  const r = await call(`${gw.url}/endpoints/cars/score`, { headers: { ...AUTH, 'azureml-model-deployment': 'purple' } });
  assertGatewayError(r, 404, 'DeploymentNotFound');
});

test('an unknown endpoint is 404 EndpointNotFound', async () => {
  assertGatewayError(await call(`${gw.url}/endpoints/planes/score`, { headers: AUTH }), 404, 'EndpointNotFound');
  assertGatewayError(await call(`${gw.url}/endpoints/`, { headers: AUTH }), 404, 'EndpointNotFound');
  assertGatewayError(await call(`${gw.url}/score`, { headers: AUTH }), 404, 'EndpointNotFound');
});

test('all-zero traffic is 404 NoPositiveTraffic, but naming the deployment still works', async () => {
  assertGatewayError(await call(`${gw.url}/endpoints/boats/score`, { headers: AUTH }), 404, 'NoPositiveTraffic');
  const r = await call(`${gw.url}/endpoints/boats/score`, { headers: { ...AUTH, 'azureml-model-deployment': 'sail' } });
  assert.equal(json(r).deployment, 'boat');
  assert.equal(r.headers['azureml-model-deployment'], 'sail');
});

test('path and query pass through; score maps to scoring_route with the query kept', async () => {
  const cases: [string, string][] = [
    ['/endpoints/cars/v1/models?x=1&y=2', '/v1/models?x=1&y=2'],
    ['/endpoints/cars/score?v=2', '/predict?v=2'],
    ['/endpoints/cars/score', '/predict'],
    ['/endpoints/cars?q=1', '/?q=1'],
    ['/endpoints/cars/', '/'],
    // Only the exact segment `score` is mapped.
    ['/endpoints/cars/scores', '/scores'],
    ['/endpoints/cars/score/batch', '/score/batch'],
    // Encoded characters are not decoded or normalised on the way.
    ['/endpoints/cars/a%2Fb/c%20d?q=%26x%3D1&r=%2F', '/a%2Fb/c%20d?q=%26x%3D1&r=%2F'],
  ];
  for (const [path, upstream] of cases) {
    assert.equal(json(await call(`${gw.url}${path}`, { headers: AUTH })).url, upstream, path);
  }
});

test('host_suffix routes Host: cars.inference.test the same way, path unchanged', async () => {
  const r = await call(`${gw.url}/score?v=3`, { headers: { ...AUTH, host: 'cars.inference.test' } });
  assert.deepEqual(json(r), { deployment: 'blue', url: '/predict?v=3' });
  const other = await call(`${gw.url}/v1/models`, { headers: { ...AUTH, host: 'CARS.inference.test:8080' } });
  assert.equal(json(other).url, '/v1/models');
  // A host that is only the suffix, or another domain, routes nowhere.
  assertGatewayError(await call(`${gw.url}/score`, { headers: { ...AUTH, host: 'inference.test' } }), 404, 'EndpointNotFound');
  assertGatewayError(await call(`${gw.url}/score`, { headers: { ...AUTH, host: 'cars.example.com' } }), 404, 'EndpointNotFound');
});

test('the upstream gets x-request-id and x-forwarded-*, never authorization or forged forwarding', async () => {
  const r = await call(`${gw.url}/endpoints/cars/score`, {
    method: 'POST',
    headers: {
      ...AUTH,
      host: 'gw.example.test:8443',
      'content-type': 'application/json',
      'x-forwarded-for': '6.6.6.6',
      'x-forwarded-host': 'evil.test',
      'x-forwarded-proto': 'https',
      'x-request-id': 'client-chosen',
    },
    body: '{"a":1}',
  });
  assert.equal(r.status, 200);
  const seen = blue.seen.at(-1)!;
  assert.equal(seen.method, 'POST');
  assert.equal(seen.body, '{"a":1}');
  const h = seen.headers;
  assert.ok(r.headers['x-request-id'], 'the response carries x-request-id');
  assert.equal(h['x-request-id'], r.headers['x-request-id']);
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-proto'], 'http');
  assert.equal(h['x-forwarded-host'], 'gw.example.test:8443');
  assert.equal(h.authorization, undefined);
  assert.equal(h['content-type'], 'application/json');
});

test('gateway-made errors carry x-request-id too', async () => {
  const r = await call(`${gw.url}/endpoints/cars/score`);
  assertGatewayError(r, 401, 'Unauthorized');
  assert.equal(blue.seen.some((s) => s.headers['x-request-id'] === r.headers['x-request-id']), false);
});
