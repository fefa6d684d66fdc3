import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertGatewayError, bearer, call, rawExchange, type RawReply, replyOf } from '../helpers/http.ts';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';

// What the gateway makes of the request line and the Host header (RFC 9112 §3.2, RFC 3986
// §5.2.4), and which client headers reach the instance. Raw sockets: every byte is ours.
// Issue 7 items 8 (Host, absolute-form), 9 (identity headers) and 13 (request targets).
const CARS_KEY = 'targets-cars-key';
const OTHER_KEY = 'targets-other-key';
const PROXY = '127.0.0.5';

let cars: TestUpstream;
let other: TestUpstream;
let gw: TestGateway;
let port: number;

before(async () => {
  cars = await startUpstream('cars');
  other = await startUpstream('other');
  gw = await startGateway({
    server: { host_suffix: '.inference.test', trusted_proxies: [`${PROXY}/32`] },
    endpoints: {
      cars: {
        keys: { primary: CARS_KEY },
        traffic: { blue: 100 },
        deployments: { blue: { instances: [cars.url], scoring_route: '/predict' } },
      },
      other: { keys: { primary: OTHER_KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [other.url] } } },
      // Callable only from 127.0.0.3, directly or behind the trusted proxy.
      fenced: {
        keys: { primary: CARS_KEY }, allowed_networks: ['127.0.0.3/32'],
        traffic: { blue: 100 }, deployments: { blue: { instances: [cars.url] } },
      },
    },
  });
  port = Number(new URL(gw.url).port);
});
after(async () => {
  await gw.close();
  await Promise.all([cars.close(), other.close()]);
});

/** One request on a raw socket, `lines` being the request line and header lines. */
function raw(lines: readonly string[]): Promise<RawReply> {
  return rawExchange(port, [`${[...lines, 'Connection: close'].join('\r\n')}\r\n\r\n`]);
}


/** Send `target` to the gateway with the cars key; the URL the cars instance saw. */
async function seenBy(target: string, host = 'gw.example.test'): Promise<string> {
  const n = cars.seen.length;
  const r = await raw([`GET ${target} HTTP/1.1`, `Host: ${host}`, `Authorization: Bearer ${CARS_KEY}`]);
  assert.equal(r.status, 200, `${target}: ${r.body}`);
  assert.equal(cars.seen.length, n + 1, `${target} reached the cars instance once`);
  return cars.seen.at(-1)!.url;
}

// ---- item 8: Host ----------------------------------------------------------------------

test('more than one Host header is 400 BadRequest (RFC 9112 §3.2), whatever the case or values', async () => {
  const before = cars.seen.length;
  for (const pair of [['Host: gw.example.test', 'host: evil.example'], ['Host: a', 'HOST: a']]) {
    const r = await raw(['GET /endpoints/cars/score HTTP/1.1', ...pair, `Authorization: Bearer ${CARS_KEY}`]);
    assertGatewayError(replyOf(r), 400, 'BadRequest');
  }
  // With host_suffix the second Host would otherwise pick the endpoint.
  const r = await raw(['GET /score HTTP/1.1', 'Host: x.example', 'Host: cars.inference.test', `Authorization: Bearer ${CARS_KEY}`]);
  assertGatewayError(replyOf(r), 400, 'BadRequest');
  assert.equal(cars.seen.length, before, 'nothing reached the instance');
});

test('more than one Authorization header is 400 BadRequest, whichever copy holds the valid key', async () => {
  const before = cars.seen.length;
  // Node keeps the first copy: a wrong key first was 401, a valid one first 200.
  for (const pair of [[`Authorization: Bearer ${CARS_KEY}`, 'authorization: Bearer wrong'], ['Authorization: Bearer wrong', `AUTHORIZATION: Bearer ${CARS_KEY}`]]) {
    const r = await raw(['GET /endpoints/cars/score HTTP/1.1', 'Host: gw.example.test', ...pair]);
    const body = assertGatewayError(replyOf(r), 400, 'BadRequest');
    assert.match(body.error.message, /more than one Authorization header/);
    assert.equal(r.headers.find(([n]) => n === 'connection')?.[1], 'close');
  }
  assert.equal(cars.seen.length, before, 'nothing reached the instance');
});

test('a Host that is not a host is 400 BadRequest', async () => {
  for (const host of ['gw example', 'gw.example:80x', 'a:1:2', '[::1']) {
    const r = await raw(['GET /endpoints/cars/score HTTP/1.1', `Host: ${host}`, `Authorization: Bearer ${CARS_KEY}`]);
    assertGatewayError(replyOf(r), 400, 'BadRequest');
  }
});

test('an absolute-form target routes by its path, and its authority stands for Host (RFC 9112 §3.2.2)', async () => {
  assert.equal(await seenBy('http://gw.example.test/endpoints/cars/score?v=1', 'ignored.example'), '/predict?v=1');
  assert.equal(cars.seen.at(-1)!.headers['x-forwarded-host'], 'gw.example.test');
  assert.equal(await seenBy('HTTPS://GW.example.test:8443/endpoints/cars/v1/models', 'ignored.example'), '/v1/models');
  assert.equal(cars.seen.at(-1)!.headers['x-forwarded-host'], 'GW.example.test:8443');
  assert.equal(await seenBy('http://gw.example.test/endpoints/cars?q=1', 'x'), '/?q=1');
  // With host_suffix the authority picks the endpoint, not the Host header.
  assert.equal(await seenBy('http://cars.inference.test/score', 'other.inference.test'), '/predict');
  assert.equal(await seenBy('http://cars.inference.test', 'other.inference.test'), '/');
});

test('an absolute-form target with userinfo, another scheme or no host is 400 BadRequest', async () => {
  for (const target of ['http://user@gw.example.test/endpoints/cars/score', 'ftp://gw.example.test/endpoints/cars/score', 'http:///endpoints/cars/score', 'http://gw.example:x/endpoints/cars/score']) {
    const r = await raw([`GET ${target} HTTP/1.1`, 'Host: gw.example.test', `Authorization: Bearer ${CARS_KEY}`]);
    assertGatewayError(replyOf(r), 400, 'BadRequest');
  }
});

// ---- item 13: request targets ----------------------------------------------------------

test('a fragment is never forwarded, and never hides the score mapping', async () => {
  assert.equal(await seenBy('/endpoints/cars/score#/../admin'), '/predict');
  assert.equal(await seenBy('/endpoints/cars/v1/models#frag'), '/v1/models');
  assert.equal(await seenBy('/endpoints/cars/score?v=1#frag'), '/predict?v=1');
});

test('dot-segments are removed before routing, percent-encoded dots included; the instance gets the result', async () => {
  const cases: [string, string][] = [
    ['/endpoints/cars/a/b/../c/./d', '/a/c/d'],
    ['/endpoints/cars/v1/../score', '/predict'],
    ['/endpoints/cars/a/%2e%2E/score', '/predict'],
    ['/endpoints/cars/a/.%2e/b/%2E/c', '/b/c'],
    ['/endpoints/cars/a/b/..', '/a/'],
    ['/endpoints/./cars/x', '/x'],
    // Encoded dots inside a segment are not dot-segments and stay as sent.
    ['/endpoints/cars/a%2eb/..c/c..', '/a%2eb/..c/c..'],
  ];
  for (const [target, upstream] of cases) assert.equal(await seenBy(target), upstream, target);
});

test('a target cannot climb out of the endpoint: it is routed by the normalised path', async () => {
  // /endpoints/cars/../other/score is /endpoints/other/score: endpoint other, with its own keys.
  const before = other.seen.length;
  const withCarsKey = await raw(['GET /endpoints/cars/../other/score HTTP/1.1', 'Host: x', `Authorization: Bearer ${CARS_KEY}`]);
  assertGatewayError(replyOf(withCarsKey), 401, 'Unauthorized');
  assert.equal(other.seen.length, before);
  const withOtherKey = await raw(['GET /endpoints/cars/%2e%2e/other/v1?q=../x HTTP/1.1', 'Host: x', `Authorization: Bearer ${OTHER_KEY}`]);
  assert.equal(withOtherKey.status, 200, withOtherKey.body);
  assert.equal(other.seen.at(-1)!.url, '/v1?q=../x');
  // Above the root there is nothing left to remove.
  assert.equal(await seenBy('/../../endpoints/cars/x'), '/x');
});

test('a protocol-relative target never reaches the instance: repeated slashes are merged', async () => {
  assert.equal(await seenBy('/endpoints/cars//evil.example/x'), '/evil.example/x');
  assert.equal(await seenBy('/endpoints/cars///evil.example//x/'), '/evil.example/x/');
  assert.equal(await seenBy('//evil.example/x', 'cars.inference.test'), '/evil.example/x');
});

test('query strings pass through untouched, dots and slashes included', async () => {
  assert.equal(await seenBy('/endpoints/cars/v1?a=/../b&c=//d/./e&f=%2e%2e'), '/v1?a=/../b&c=//d/./e&f=%2e%2e');
  assert.equal(await seenBy('/endpoints/cars/score?next=//evil'), '/predict?next=//evil');
});

// ---- item 9: identity headers ----------------------------------------------------------

const SPOOFABLE = ['X-Real-IP', 'True-Client-IP', 'X-Client-IP', 'CF-Connecting-IP', 'X-Original-Forwarded-For'];

test('client-identity headers and x-shadow-request from an untrusted peer never reach the instance', async () => {
  const r = await raw([
    'GET /endpoints/cars/score HTTP/1.1',
    'Host: gw.example.test',
    `Authorization: Bearer ${CARS_KEY}`,
    ...SPOOFABLE.map((h) => `${h}: 6.6.6.6`),
    'x-shadow-request: 1',
    'X-Forwarded-Host: evil.example',
    'X-Keep: yes',
  ]);
  assert.equal(r.status, 200, r.body);
  const h = cars.seen.at(-1)!.headers;
  for (const name of [...SPOOFABLE, 'x-shadow-request']) assert.equal(h[name.toLowerCase()], undefined, `${name} reached the instance`);
  assert.equal(h['x-forwarded-for'], '127.0.0.1');
  assert.equal(h['x-forwarded-host'], 'gw.example.test');
  assert.equal(h['x-keep'], 'yes');
});

test('a trusted proxy keeps its identity headers, never x-shadow-request; x-forwarded-host only when valid', async () => {
  const headers = { ...bearer(CARS_KEY), 'x-real-ip': '203.0.113.7', 'cf-connecting-ip': '203.0.113.7', 'x-shadow-request': '1' };
  const ok = await call(`${gw.url}/endpoints/cars/score`, {
    headers: { ...headers, 'x-forwarded-host': 'api.example.com:443' }, localAddress: PROXY,
  });
  assert.equal(ok.status, 200, ok.body);
  let h = cars.seen.at(-1)!.headers;
  assert.equal(h['x-real-ip'], '203.0.113.7');
  assert.equal(h['cf-connecting-ip'], '203.0.113.7');
  assert.equal(h['x-shadow-request'], undefined);
  assert.equal(h['x-forwarded-host'], 'api.example.com:443');

  for (const bad of ['evil.example/path', 'a b', 'evil.example, other.example', 'x:y', '[::1']) {
    const r = await call(`${gw.url}/endpoints/cars/score`, { headers: { ...headers, 'x-forwarded-host': bad }, localAddress: PROXY });
    assert.equal(r.status, 200, r.body);
    h = cars.seen.at(-1)!.headers;
    assert.equal(h['x-forwarded-host'], undefined, `x-forwarded-host ${JSON.stringify(bad)} reached the instance`);
  }
  // An IP literal with a port is a host.
  await call(`${gw.url}/endpoints/cars/score`, { headers: { ...headers, 'x-forwarded-host': '[2001:db8::1]:8443' }, localAddress: PROXY });
  assert.equal(cars.seen.at(-1)!.headers['x-forwarded-host'], '[2001:db8::1]:8443');
});

test('a trusted proxy\'s X-Forwarded-Proto reaches the instance only as http or https', async () => {
  for (const [sent, seen] of [['https', 'https'], ['HTTPS', 'https'], ['http', 'http'], ['gopher', 'http'], ['https, http', 'http'], ['<script>', 'http']] as const) {
    const r = await call(`${gw.url}/endpoints/cars/score`, { headers: { ...bearer(CARS_KEY), 'x-forwarded-proto': sent }, localAddress: PROXY });
    assert.equal(r.status, 200, r.body);
    assert.equal(cars.seen.at(-1)!.headers['x-forwarded-proto'], seen, `x-forwarded-proto ${JSON.stringify(sent)}`);
  }
});

test('an X-Forwarded-For hop that is not an address makes the client unknown: no forged text logged, allow-lists fail closed', async () => {
  const via = (xff: string, endpoint = 'fenced') => call(`${gw.url}/endpoints/${endpoint}/score`, {
    headers: { ...bearer(CARS_KEY), 'x-forwarded-for': xff }, localAddress: PROXY,
  });
  const lastLine = (): Record<string, unknown> => gw.logs.access().at(-1)!;
  // The control: a well-formed chain names the client, and the allow-list admits it.
  assert.equal((await via('127.0.0.3')).status, 200);
  assert.equal(lastLine().client_ip, '127.0.0.3');

  for (const xff of ['garbage, <script>', '127.0.0.3, <script>', 'unknown']) {
    const open = await via(xff, 'cars');
    assert.equal(open.status, 200, 'an endpoint without allowed_networks still serves');
    assert.equal(lastLine().client_ip, '', `client_ip for ${JSON.stringify(xff)}`);
    assert.ok(!gw.logs.raw.some((l) => l.includes('<script>')), 'no forged text in any log line');
    const fenced = await via(xff);
    assert.equal(fenced.status, 403, `allowed_networks with ${JSON.stringify(xff)}`);
    assert.equal(fenced.json<{ error: { code: string } }>().error.code, 'NetworkNotAllowed');
  }
  // A port after the address (Azure Application Gateway writes one) is not garbage.
  assert.equal((await via('127.0.0.3:51234')).status, 200);
  assert.equal(lastLine().client_ip, '127.0.0.3');
});

test('an Upgrade to WebSocket (or anything but h2c) is refused with 400 and the connection closed; nothing reaches the instance', async () => {
  const before = cars.seen.length;
  for (const upgrade of ['websocket', 'WebSocket', 'h2c, websocket', 'TLS/1.2']) {
    const r = await rawExchange(port, [[
      'GET /endpoints/cars/score HTTP/1.1', 'Host: gw.example.test', `Authorization: Bearer ${CARS_KEY}`,
      'Connection: Upgrade', `Upgrade: ${upgrade}`, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    ].join('\r\n') + '\r\n\r\n']);
    const body = assertGatewayError(replyOf(r), 400, 'BadRequest');
    assert.match(body.error.message, /Protocol upgrades/, upgrade);
    assert.equal(r.headers.find(([n]) => n === 'connection')?.[1], 'close');
  }
  assert.equal(cars.seen.length, before);
});

test('Upgrade: h2c (Java HttpClient\'s default) is declined silently: served over HTTP/1.1, upgrade headers not forwarded', async () => {
  const r = await rawExchange(port, [[
    'POST /endpoints/cars/score HTTP/1.1', 'Host: gw.example.test', `Authorization: Bearer ${CARS_KEY}`,
    'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA', 'Content-Length: 2',
  ].join('\r\n') + '\r\n\r\n{}']);
  assert.equal(r.status, 200, r.body);
  const seen = cars.seen.at(-1)!;
  assert.equal(seen.body, '{}');
  assert.equal(seen.headers.upgrade, undefined);
  assert.equal(seen.headers['http2-settings'], undefined);
});
