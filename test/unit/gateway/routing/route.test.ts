import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../../gateway/errors.ts';
import { refusedHeader, matchRoute, normalizePath, requestTarget, type RequestTarget, upstreamPath, validHost } from '../../../../gateway/routing/route.ts';

// The request line and Host as the gateway reads them (RFC 9112 §3.2, RFC 3986 §5.2.4):
// issue 7 items 8 and 13.

/** requestTarget(url, raw, host); raw defaults to one `Host: gw.example`, host to its value. */
function target(url: string, raw: string[] = ['Host', 'gw.example'], ...host: [string | undefined] | []): RequestTarget {
  const t = requestTarget(url, raw, host.length ? host[0] : raw[1]);
  if (t instanceof GatewayError) assert.fail(`${url}: ${t.message}`);
  return t;
}

function refused(url: string, raw: string[] = ['Host', 'gw.example']): GatewayError {
  const t = requestTarget(url, raw, raw[1]);
  assert.ok(t instanceof GatewayError, `${url} should be refused`);
  assert.equal(t.status, 400);
  assert.equal(t.code, 'BadRequest');
  assert.equal(t.headers?.connection, 'close');
  return t;
}

test('more than one Host line is refused, whatever the case; one or none is fine', () => {
  assert.match(refused('/x', ['Host', 'a', 'host', 'b']).message, /more than one Host/);
  refused('/x', ['Host', 'a', 'X-Other', '1', 'HOST', 'a']);
  assert.deepEqual(target('/x', ['Host', 'a', 'X-Hosts', 'b', 'Hos', 'c'], 'a'), { path: '/x', host: 'a' });
  assert.deepEqual(target('/x', [], undefined), { path: '/x', host: undefined });
  // An empty Host is allowed (RFC 9112 §3.2: a URI without authority).
  assert.deepEqual(target('/x', ['Host', ''], ''), { path: '/x', host: '' });
});

test('more than one Authorization line is refused, whatever the case; one or none is fine', () => {
  assert.match(refused('/x', ['Host', 'a', 'Authorization', 'Bearer k1', 'authorization', 'Bearer k2']).message, /more than one Authorization/);
  refused('/x', ['AUTHORIZATION', 'Bearer k', 'Host', 'a', 'Authorization', 'Bearer k']);
  assert.deepEqual(target('/x', ['Host', 'a', 'Authorization', 'Bearer k', 'Proxy-Authorization', 'x', 'X-Authorization', 'y'], 'a'), { path: '/x', host: 'a' });
  assert.equal(refusedHeader(['Host', 'a', 'Authorization', 'Bearer k', 'X-Thirteen-Ch', 'z']), undefined);
  assert.equal(refusedHeader([]), undefined);
  assert.equal(refusedHeader(['authorization', 'a', 'Authorization', 'a'])?.code, 'BadRequest');
});

test('an Upgrade other than h2c is refused; h2c is declined silently (served as HTTP/1.1)', () => {
  for (const v of ['websocket', 'WebSocket', 'h2c, websocket', 'h2', 'TLS/1.2', '']) {
    assert.match(refused('/x', ['Host', 'a', 'Upgrade', v]).message, /Protocol upgrades/, v);
  }
  refused('/x', ['Host', 'a', 'upgrade', 'websocket']);
  for (const v of ['h2c', 'H2C']) assert.deepEqual(target('/x', ['Host', 'a', 'Upgrade', v, 'Connection', 'Upgrade, HTTP2-Settings'], 'a'), { path: '/x', host: 'a' });
  assert.deepEqual(target('/x', ['Host', 'a', 'Referer', 'websocket', 'Upgrades', 'x'], 'a'), { path: '/x', host: 'a' });
});

test('a Host that is not a host is refused', () => {
  for (const h of ['a b', 'a/b', 'a:1:2', 'a:80x', '[::1', '[nope]', 'é.example', 'a%2', ':80']) refused('/x', ['Host', h]);
});

test('an absolute-form target is routed by its path; its authority replaces Host', () => {
  const cases: [string, RequestTarget][] = [
    ['http://api.example/endpoints/cars/score?q=1', { path: '/endpoints/cars/score?q=1', host: 'api.example' }],
    ['HTTPS://Api.Example:8443/a', { path: '/a', host: 'Api.Example:8443' }],
    ['http://api.example', { path: '/', host: 'api.example' }],
    ['http://api.example?q=1', { path: '/?q=1', host: 'api.example' }],
    ['http://[2001:db8::1]:81/a/../b#f', { path: '/b', host: '[2001:db8::1]:81' }],
  ];
  for (const [url, expected] of cases) assert.deepEqual(target(url, ['Host', 'ignored'], 'ignored'), expected, url);
  // Even with no Host header at all (HTTP/1.0).
  assert.deepEqual(target('http://api.example/x', [], undefined), { path: '/x', host: 'api.example' });
});

test('absolute-form with userinfo, another scheme, no host or a bad host is refused, and so is a bare word', () => {
  for (const url of ['http://u:p@api.example/x', 'ftp://api.example/x', 'http:///x', 'http://', 'http://a b/x', 'http://a:b/x', 'foo', 'httpx://a/x']) refused(url);
  // Asterisk-form (OPTIONS *) routes nowhere but is not malformed.
  assert.deepEqual(target('*'), { path: '*', host: 'gw.example' });
  assert.equal(matchRoute('*', 'cars.inference.test', '.inference.test'), undefined);
});

test('a target without dots, repeated slashes, encoded dots or a fragment is used as sent (same string)', () => {
  for (const url of ['/endpoints/cars/score', '/a.b/c..d/e.', '/a?x=/../y&z=//w', '/a%2Fb/%2e%2ex?q=/%2e', '/a/b.']) {
    assert.equal(target(url).path, url);
  }
});

test('normalizePath drops the fragment, merges slashes and removes dot-segments; the query stays', () => {
  const cases: [string, string][] = [
    ['/score#/../admin', '/score'],
    ['/a?q=1#frag', '/a?q=1'],
    ['/a#', '/a'],
    ['//evil.example/x', '/evil.example/x'],
    ['/endpoints/cars//evil.example//x', '/endpoints/cars/evil.example/x'],
    ['/a///', '/a/'],
    ['/a/b/../c/./d', '/a/c/d'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/b/../..', '/'],
    ['/../../x', '/x'],
    ['/..', '/'],
    ['/.', '/'],
    ['/endpoints/cars/../other/score', '/endpoints/other/score'],
    // Percent-encoded dots count as dots, in any case, as NGINX does.
    ['/a/%2e%2e/b', '/b'],
    ['/a/%2E%2E/b', '/b'],
    ['/a/.%2e/b', '/b'],
    ['/a/%2E./b', '/b'],
    ['/a/%2e/b', '/a/b'],
    // ...but only as a whole segment; other encodings are not decoded.
    ['/a/%2e%2e%2e/b/./c', '/a/%2e%2e%2e/b/c'],
    ['/a%2e/%2e%2ex/..%2f/./b', '/a%2e/%2e%2ex/..%2f/b'],
    ['/a/./b?x=/../y&z=//w#f', '/a/b?x=/../y&z=//w'],
    ['/a/../b?', '/b?'],
  ];
  for (const [url, expected] of cases) {
    assert.equal(normalizePath(url), expected, url);
    assert.equal(target(url).path, expected, `requestTarget(${url})`);
  }
});

test('matchRoute: prefix routes, rest starts with one slash after normalising', () => {
  assert.deepEqual(matchRoute(target('/endpoints/cars//evil.example/x').path, undefined, undefined), { endpoint: 'cars', rest: '/evil.example/x' });
  assert.deepEqual(matchRoute('/endpoints/cars?q=1', undefined, undefined), { endpoint: 'cars', rest: '/?q=1' });
  assert.deepEqual(matchRoute('/endpoints/cars', undefined, undefined), { endpoint: 'cars', rest: '/' });
  assert.equal(matchRoute('/endpoints/', undefined, undefined), undefined);
  assert.equal(matchRoute(target('/endpoints/cars/..').path, undefined, undefined), undefined);
  assert.deepEqual(matchRoute('/score', 'CARS.inference.test:8080', '.inference.test'), { endpoint: 'cars', rest: '/score' });
  assert.deepEqual(matchRoute('/x', '[::1]:80', '.inference.test'), undefined);
  assert.equal(matchRoute('/score', 'inference.test', '.inference.test'), undefined);
});

test('upstreamPath maps exactly /score, keeping the query', () => {
  assert.equal(upstreamPath('/score', '/predict'), '/predict');
  assert.equal(upstreamPath('/score?v=1', '/predict'), '/predict?v=1');
  assert.equal(upstreamPath('/scores', '/predict'), '/scores');
  assert.equal(upstreamPath('/score/x', '/predict'), '/score/x');
  // The fragment that once hid the mapping never gets this far.
  assert.equal(upstreamPath(target('/score#/../admin').path, '/predict'), '/predict');
});

test('validHost: reg-name or bracketed IPv6, optional port of up to five digits', () => {
  for (const h of ['gw.example', 'GW.example:8443', '10.0.0.1:80', 'a_b-c~d', 'x%41y', '[2001:db8::1]', '[::1]:8080', 'h:', "a!$&'()*+,;=b"]) {
    assert.equal(validHost(h), true, h);
  }
  for (const h of ['', ':80', 'a b', 'a/b', 'a@b', 'a:1:2', 'a:123456', 'a:8o', '[::1', '[::1]x', '[::1]:a', '[v1.x]', '::1', 'é', 'a%zz', 'a%4', 'a\tb']) {
    assert.equal(validHost(h), false, h);
  }
});
