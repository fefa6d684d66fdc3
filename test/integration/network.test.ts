import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { config, startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call } from '../helpers/http.ts';

// Public and private listeners bind different loopback addresses; clients pick a source
// address (127.0.0.x) to act as different networks.
const KEY = 'net-test-key';
let gw: TestGateway;
let model: TestUpstream;

const ready = (async () => {
  model = await startUpstream('blue');
  const ep = (extra: Record<string, unknown>) => ({
    keys: { primary: KEY },
    traffic: { blue: 100 },
    deployments: { blue: { instances: [model.url] } },
    ...extra,
  });
  gw = await startGateway({
    server: {
      listen: { host: '127.0.0.1', port: 0 },
      private_listen: { host: '127.0.0.2', port: 0 },
      trusted_proxies: ['127.0.0.5/32'],
    },
    endpoints: {
      open: ep({}),
      privy: ep({ public_network_access: 'disabled' }),
      fenced: ep({ allowed_networks: ['127.0.0.3/32', '10.0.0.0/8'] }),
    },
  });
})();

after(async () => {
  await gw?.close();
  await model?.close();
});

test('a private endpoint answers on the public listener exactly like an unknown one', async () => {
  await ready;
  const hidden = await call(`${gw.url}/endpoints/privy/score`, { body: '{}', headers: bearer(KEY) });
  const unknown = await call(`${gw.url}/endpoints/nosuch/score`, { body: '{}', headers: bearer(KEY) });
  assert.equal(hidden.status, 404);
  assert.equal(unknown.status, 404);
  const strip = (b: Record<string, { request_id?: string }>) => ({ ...b.error, request_id: undefined });
  assert.deepEqual(strip(hidden.json()), strip(unknown.json()));
  assert.deepEqual(Object.keys(hidden.headers).sort(), Object.keys(unknown.headers).sort());
  // Without credentials too: the 404 comes before authentication, so nothing leaks.
  const anon = await call(`${gw.url}/endpoints/privy/score`, { body: '{}' });
  assert.equal(anon.status, 404);
});

test('a private endpoint is served on the private listener', async () => {
  await ready;
  assert.ok(gw.privateUrl?.startsWith('http://127.0.0.2:'));
  const r = await call(`${gw.privateUrl}/endpoints/privy/score`, { body: '{}', headers: bearer(KEY) });
  assert.equal(r.status, 200);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  // Public endpoints are served on both listeners.
  assert.equal((await call(`${gw.privateUrl}/endpoints/open/score`, { body: '{}', headers: bearer(KEY) })).status, 200);
  assert.equal((await call(`${gw.url}/endpoints/open/score`, { body: '{}', headers: bearer(KEY) })).status, 200);
});

test('allowed_networks admits listed client networks and refuses others with 403', async () => {
  await ready;
  const inside = await call(`${gw.url}/endpoints/fenced/score`, { body: '{}', headers: bearer(KEY), localAddress: '127.0.0.3' });
  assert.equal(inside.status, 200);
  const outside = await call(`${gw.url}/endpoints/fenced/score`, { body: '{}', headers: bearer(KEY), localAddress: '127.0.0.4' });
  assert.equal(outside.status, 403);
  assert.equal(outside.json<{ error: { code: string } }>().error.code, 'NetworkNotAllowed');
});

test('X-Forwarded-For is believed only from a trusted proxy', async () => {
  await ready;
  const viaProxy = await call(`${gw.url}/endpoints/fenced/score`, {
    body: '{}', headers: { ...bearer(KEY), 'x-forwarded-for': '127.0.0.3' }, localAddress: '127.0.0.5',
  });
  assert.equal(viaProxy.status, 200);
  assert.equal(model.seen.at(-1)?.headers['x-forwarded-for'], '127.0.0.3, 127.0.0.5');

  const spoofed = await call(`${gw.url}/endpoints/fenced/score`, {
    body: '{}', headers: { ...bearer(KEY), 'x-forwarded-for': '127.0.0.3' }, localAddress: '127.0.0.4',
  });
  assert.equal(spoofed.status, 403);

  const direct = await call(`${gw.url}/endpoints/open/score`, {
    body: '{}', headers: { ...bearer(KEY), 'x-forwarded-for': '10.9.9.9' }, localAddress: '127.0.0.4',
  });
  assert.equal(direct.status, 200);
  assert.equal(model.seen.at(-1)?.headers['x-forwarded-for'], '127.0.0.4', 'an untrusted client cannot forge the chain');
  const line = gw.logs.access().at(-1);
  assert.equal(line?.client_ip, '127.0.0.4');
});

test('the admin listener never serves invocation traffic', async () => {
  await ready;
  const r = await call(`${gw.adminUrl}/endpoints/open/score`, { body: '{}', headers: bearer(KEY) });
  assert.equal(r.status, 404);
  assert.equal(model.seen.filter((s) => s.url === '/score').length >= 1, true);
  const minimal = { endpoints: { open: { keys: { primary: KEY }, deployments: { blue: { instances: [model.url] } } } } };
  assert.equal(config(minimal).server.admin_listen.host, '127.0.0.1', 'admin defaults to loopback');
  assert.equal(config(minimal).server.listen.host, '0.0.0.0');
  const metrics = (await call(`${gw.adminUrl}/metrics`)).body;
  assert.ok(metrics.includes(`switchyard_instance_ready{endpoint="privy",deployment="blue",instance="${model.url}"} 1`), 'every instance has a readiness series');
});
