import assert from 'node:assert/strict';
import { test } from 'node:test';
import { downstreamHeaders, type ForwardedFor, forwardedFor, upstreamHeaders } from '../../../../gateway/upstream/headers.ts';

// Which client headers reach the instance, and what the gateway says about the client
// (issue 7 item 9): identity headers only from a trusted proxy, x-shadow-request never,
// x-forwarded-host only when it is a host.

const IDENTITY = [
  'X-Real-IP', 'True-Client-IP', 'X-Client-IP', 'CF-Connecting-IP', 'X-Original-Forwarded-For', 'X-Cluster-Client-IP',
  'Fastly-Client-IP', 'Client-IP', 'X-Forwarded', 'Forwarded-For', 'X-Forwarded-Port', 'X-Forwarded-Prefix', 'X-Forwarded-Server',
];

function fwd(trusted: boolean, ...host: [string | undefined] | []): ForwardedFor {
  return { requestId: 'rid', forwardedFor: '10.0.0.9', proto: 'http', host: host.length ? host[0] : 'gw.example', trusted };
}

/** The flat list as (lower-cased name → values). */
function asMap(flat: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i < flat.length; i += 2) {
    const n = flat[i]!.toLowerCase();
    m.set(n, [...(m.get(n) ?? []), flat[i + 1]!]);
  }
  return m;
}

const RAW = [
  'Host', 'gw.example', 'Authorization', 'Bearer k', 'Content-Type', 'application/json',
  ...IDENTITY.flatMap((n) => [n, '6.6.6.6']), 'x-shadow-request', '1', 'X-SHADOW-REQUEST', '1',
  'X-Forwarded-For', '6.6.6.6', 'X-Forwarded-Host', 'evil.example', 'X-Keep', 'a', 'x-keep', 'b',
];

test('from an untrusted peer, identity headers and x-shadow-request are dropped; the rest keeps its order', () => {
  const m = asMap(upstreamHeaders(RAW, undefined, fwd(false)));
  for (const n of [...IDENTITY, 'x-shadow-request', 'authorization', 'host']) assert.equal(m.has(n.toLowerCase()), false, n);
  assert.deepEqual(m.get('x-keep'), ['a', 'b']);
  assert.deepEqual(m.get('content-type'), ['application/json']);
  assert.deepEqual(m.get('x-forwarded-for'), ['10.0.0.9']);
  assert.deepEqual(m.get('x-forwarded-host'), ['gw.example']);
  assert.deepEqual(m.get('x-request-id'), ['rid']);
});

test('from a trusted proxy, identity headers pass but x-shadow-request never does', () => {
  const m = asMap(upstreamHeaders(RAW, undefined, fwd(true)));
  for (const n of IDENTITY) assert.deepEqual(m.get(n.toLowerCase()), ['6.6.6.6'], n);
  assert.equal(m.has('x-shadow-request'), false);
  assert.deepEqual(m.get('x-forwarded-for'), ['10.0.0.9'], 'the chain is the one forwardedFor built');
});

test('no x-forwarded-host when there is no valid host', () => {
  assert.equal(asMap(upstreamHeaders(RAW, undefined, fwd(false, undefined))).has('x-forwarded-host'), false);
});

test('headers named in Connection are dropped too', () => {
  const m = asMap(upstreamHeaders(['Connection', 'X-A, keep-alive', 'X-A', '1', 'X-B', '2'], 'X-A, keep-alive', fwd(false)));
  assert.equal(m.has('x-a'), false);
  assert.deepEqual(m.get('x-b'), ['2']);
});

test('forwardedFor: an untrusted peer is replaced, its x-forwarded-host ignored; Host only when valid', () => {
  const base = { requestId: 'r', peer: '10.0.0.9', peerTrusted: false };
  assert.deepEqual(forwardedFor({ ...base, headers: { host: 'gw.example:8080', 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil', 'x-forwarded-proto': 'https' } }), {
    requestId: 'r', forwardedFor: '10.0.0.9', proto: 'http', host: 'gw.example:8080', trusted: false,
  });
  assert.equal(forwardedFor({ ...base, headers: { host: 'bad host' } }).host, undefined);
  assert.equal(forwardedFor({ ...base, headers: {} }).host, undefined);
});

test('forwardedFor: a trusted proxy extends the chain and keeps a valid x-forwarded-host, else omits it', () => {
  const base = { requestId: 'r', peer: '10.0.0.5', peerTrusted: true };
  const ok = forwardedFor({ ...base, headers: { host: 'internal:80', 'x-forwarded-for': '1.2.3.4', 'x-forwarded-host': 'api.example.com', 'x-forwarded-proto': 'https' } });
  assert.deepEqual(ok, { requestId: 'r', forwardedFor: '1.2.3.4, 10.0.0.5', proto: 'https', host: 'api.example.com', trusted: true });
  assert.equal(forwardedFor({ ...base, headers: { host: 'internal:80' } }).host, 'internal:80');
  assert.equal(forwardedFor({ ...base, headers: { host: 'internal:80', 'x-forwarded-host': '[::1]:443' } }).host, '[::1]:443');
  for (const bad of ['evil.example/path', 'a b', 'a.example, b.example', 'x:y', '<script>', 'a\r\nb']) {
    assert.equal(forwardedFor({ ...base, headers: { host: 'internal:80', 'x-forwarded-host': bad } }).host, undefined, bad);
  }
});

test('forwardedFor: a trusted proxy\'s x-forwarded-proto is kept only when it is http or https, else http', () => {
  const base = { requestId: 'r', peer: '10.0.0.5', peerTrusted: true };
  const proto = (p: string | string[] | undefined): string => forwardedFor({ ...base, headers: { host: 'h', 'x-forwarded-proto': p } }).proto;
  assert.equal(proto('https'), 'https');
  assert.equal(proto('http'), 'http');
  assert.equal(proto('HTTPS'), 'https', 'a scheme is case-insensitive; sent in lower case');
  assert.equal(proto('Http'), 'http');
  for (const bad of ['gopher', 'ftp', '', 'https, http', 'https ', 'javascript', '<script>', 'httpx']) assert.equal(proto(bad), 'http', bad);
  assert.equal(proto(undefined), 'http');
  assert.equal(proto(['https', 'https']), 'http');
});

test('downstreamHeaders drops hop-by-hop and Connection-named headers', () => {
  const h = downstreamHeaders({ connection: 'x-secret', 'x-secret': '1', 'keep-alive': 'timeout=5', 'x-ok': '2' }, 200);
  assert.deepEqual(h, ['x-ok', '2']);
});

test('downstreamHeaders keeps every value of a repeated header, and drops a 204/304 length', () => {
  assert.deepEqual(downstreamHeaders({ 'set-cookie': ['a=1', 'b=2'], 'content-length': '5' }, 200), ['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-length', '5']);
  assert.deepEqual(downstreamHeaders({ 'content-length': '5', etag: '"v"' }, 304), ['etag', '"v"']);
});
