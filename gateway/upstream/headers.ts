import type { IncomingHttpHeaders } from 'node:http';
import { validHost } from '../routing/route.ts';

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) apply to one connection and are never forwarded;
 * neither is any header the `Connection` header names. `expect` is handled by the
 * listener (Node answers `100 Continue` itself), `host` is set by the upstream client,
 * `authorization` carries the caller's secret (SPEC §3), `x-shadow-request` marks the
 * gateway's own mirrored copies and is never taken from anyone.
 */
const HOP_BY_HOP = new Set([
  'connection', 'proxy-connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authorization', 'trailer',
]);
const NOT_FORWARDED_UP = new Set([
  ...HOP_BY_HOP, 'host', 'authorization', 'expect', 'x-request-id',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-shadow-request',
]);
/**
 * Headers in which a proxy tells who the client is. Only a trusted proxy may say so; from
 * anyone else they are dropped, as X-Forwarded-For is replaced, so a client cannot pose as
 * another address to the model.
 */
const CLIENT_IDENTITY = [
  'x-real-ip', 'true-client-ip', 'x-client-ip', 'cf-connecting-ip', 'x-original-forwarded-for',
  'x-cluster-client-ip', 'fastly-client-ip', 'client-ip', 'forwarded-for', 'x-forwarded',
  'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server',
];
const NOT_FORWARDED_UP_UNTRUSTED = new Set([...NOT_FORWARDED_UP, ...CLIENT_IDENTITY]);

/** Response headers the gateway sets itself (SPEC §3): the instance's own are replaced. */
const GATEWAY_SETS = new Set(['x-request-id', 'azureml-model-deployment']);

/** Lower-cased names listed in a `Connection` header value. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  // The common values name no extra header: skip the split on the hot path.
  if (!value || value === 'keep-alive' || value === 'close' || value === 'Keep-Alive') return undefined;
  const tokens = new Set<string>();
  for (const part of (Array.isArray(value) ? value.join(',') : value).split(',')) {
    const t = part.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive') tokens.add(t);
  }
  return tokens.size ? tokens : undefined;
}

/** What the gateway adds to every upstream request. */
export interface ForwardedFor {
  readonly requestId: string;
  readonly forwardedFor: string;
  readonly proto: string;
  /** A valid host (see {@link validHost}), or undefined: no x-forwarded-host then. */
  readonly host: string | undefined;
  /** The peer is a trusted proxy: its client-identity headers pass. */
  readonly trusted: boolean;
}

/**
 * Build the upstream request's header list (flat `[name, value, ...]`, the form undici
 * takes without re-parsing) from the client's raw headers.
 */
export function upstreamHeaders(raw: readonly string[], connection: string | string[] | undefined, fwd: ForwardedFor): string[] {
  const named = connectionTokens(connection);
  const dropped = fwd.trusted ? NOT_FORWARDED_UP : NOT_FORWARDED_UP_UNTRUSTED;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (dropped.has(lower) || named?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  out.push('x-request-id', fwd.requestId, 'x-forwarded-for', fwd.forwardedFor, 'x-forwarded-proto', fwd.proto);
  if (fwd.host) out.push('x-forwarded-host', fwd.host);
  return out;
}

/**
 * The instance's response headers minus hop-by-hop ones, as a flat `[name, value, …]` list
 * built in one pass (the form `res.writeHead` takes without building an object), for the
 * sink to complete with the gateway's own (SPEC §3). A 204 or 304 never announces a body
 * (RFC 9110 §8.6, §15.3.5): its length and framing headers are dropped too.
 */
export function downstreamHeaders(headers: IncomingHttpHeaders, status: number): string[] {
  const named = connectionTokens(headers.connection);
  const bodiless = status === 204 || status === 304;
  const out: string[] = [];
  for (const h in headers) {
    if (HOP_BY_HOP.has(h) || GATEWAY_SETS.has(h) || named?.has(h) || (bodiless && (h === 'content-length' || h === 'transfer-encoding'))) continue;
    const v = headers[h];
    if (typeof v === 'string') out.push(h, v);
    else if (v !== undefined) for (const one of v) out.push(h, one);
  }
  return out;
}

/** What {@link forwardedFor} needs to know of the request. */
export interface ForwardingFacts {
  readonly requestId: string;
  readonly peer: string;
  readonly peerTrusted: boolean;
  readonly headers: IncomingHttpHeaders;
}

/** `host` when it is a valid host, else undefined (x-forwarded-host is then omitted). */
function hostOrNone(host: string | undefined): string | undefined {
  return host && validHost(host) ? host : undefined;
}

/**
 * A trusted proxy's X-Forwarded-Proto when it is `http` or `https` (any case; sent lower
 * case), else `http`, the scheme of the connection the gateway itself received, as if the
 * header were absent: a model never sees `gopher`, a list or arbitrary text there.
 */
function forwardedProto(proto: string | string[] | undefined): string {
  if (proto === 'https' || proto === 'http') return proto;
  if (typeof proto !== 'string' || (proto.length !== 4 && proto.length !== 5)) return 'http';
  return proto.toLowerCase() === 'https' ? 'https' : 'http';
}

/**
 * The X-Forwarded-* headers for the instance. A trusted proxy's chain is extended and its
 * proto/host kept when valid ({@link forwardedProto}); from anyone else they are replaced,
 * so a client cannot forge them. The host is sent only when it is one (a proxy's
 * `evil.example/path` or a list is omitted, not passed on nor replaced by the Host header).
 */
export function forwardedFor(r: ForwardingFacts): ForwardedFor {
  const peer = r.peer;
  const h = r.headers;
  if (r.peerTrusted) {
    const prior = h['x-forwarded-for'];
    const proto = h['x-forwarded-proto'];
    const host = h['x-forwarded-host'];
    return {
      requestId: r.requestId,
      forwardedFor: prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer,
      proto: forwardedProto(proto),
      host: hostOrNone(typeof host === 'string' && host ? host : h.host),
      trusted: true,
    };
  }
  return { requestId: r.requestId, forwardedFor: peer, proto: 'http', host: hostOrNone(h.host), trusted: false };
}
