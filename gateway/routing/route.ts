import { isIPv6 } from 'node:net';
import { GatewayError } from '../errors.ts';

/**
 * Where an invocation goes (SPEC §3): `/endpoints/{endpoint}/{path}` on a listener, or,
 * with `host_suffix`, `Host: {endpoint}{host_suffix}` and the path as is. Query strings
 * pass through untouched.
 */
export interface RouteMatch {
  readonly endpoint: string;
  /** Path and query to send upstream, before `score` is mapped. Starts with `/`. */
  readonly rest: string;
}

/** The request target and host the gateway routes by (see {@link requestTarget}). */
export interface RequestTarget {
  /** Origin-form path and query, normalised; `*` for an asterisk-form target. */
  readonly path: string;
  /** The Host header, or an absolute-form target's authority, which replaces it. */
  readonly host: string | undefined;
}

const PREFIX = '/endpoints/';

/** Malformed requests close the connection, as NGINX does after a 400. */
function badRequest(message: string): GatewayError {
  return new GatewayError('BadRequest', message, { connection: 'close' });
}

const DUPLICATE_HOST = badRequest('The request has more than one Host header.');
const DUPLICATE_AUTHORIZATION = badRequest('The request has more than one Authorization header.');
const UPGRADE = badRequest('Protocol upgrades (Upgrade: websocket and the like) are not supported: send plain HTTP requests (responses stream).');

/**
 * What in the header block both listeners refuse (400) before they authenticate or route,
 * else undefined:
 * - more than one `Host` (RFC 9112 §3.2) or `Authorization` (a singleton field, RFC 9110
 *   §5.3: Node keeps the first copy and drops the rest, so "which one counts" would differ
 *   between the gateway and anything in front of or behind it);
 * - an `Upgrade` to anything but `h2c` (WebSocket, say): the gateway does not tunnel, and
 *   serving it as a plain GET would have the model answer a question it was not asked.
 *   `Upgrade: h2c` (Java's HttpClient sends it by default) is declined silently, as RFC
 *   9110 §7.8 allows: the request is served over HTTP/1.1.
 *
 * One pass over `rawHeaders` with a length test per name; nothing is allocated unless a
 * name has the length of one of these.
 */
export function refusedHeader(rawHeaders: readonly string[]): GatewayError | undefined {
  let hostLines = 0;
  let authLines = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    switch (name.length) {
      case 4:
        if ((name === 'Host' || name === 'host' || name.toLowerCase() === 'host') && ++hostLines > 1) return DUPLICATE_HOST;
        break;
      case 7:
        if ((name === 'Upgrade' || name === 'upgrade' || name.toLowerCase() === 'upgrade') && !isH2c(rawHeaders[i + 1]!)) return UPGRADE;
        break;
      case 13:
        if ((name === 'Authorization' || name === 'authorization' || name.toLowerCase() === 'authorization') && ++authLines > 1) {
          return DUPLICATE_AUTHORIZATION;
        }
        break;
    }
  }
  return undefined;
}

function isH2c(value: string): boolean {
  return value === 'h2c' || (value.length === 3 && value.toLowerCase() === 'h2c');
}

/**
 * Read the request line's target and the Host header (RFC 9112 §3.2): a header both
 * listeners refuse ({@link refusedHeader}), or a Host that is not a host, is a 400;
 * an absolute-form target (`http://authority/path`) is routed by its path, and its
 * authority replaces Host (§3.2.2). The path is then normalised ({@link normalizePath})
 * when it may need it: only a path containing `/.`, `//`, `/%2e`, `/%2E` or a `#` is
 * rewritten, anything else is used as sent.
 */
export function requestTarget(url: string, rawHeaders: readonly string[], host: string | undefined): RequestTarget | GatewayError {
  const refused = refusedHeader(rawHeaders);
  if (refused) return refused;
  let path = url;
  if (url.charCodeAt(0) !== 0x2f /* / */) {
    if (url === '*') return { path: url, host };
    const abs = absoluteForm(url);
    if (typeof abs === 'string') return badRequest(abs);
    path = abs.path;
    host = abs.authority;
  } else if (host && !validHost(host)) {
    return badRequest('The Host header is not a valid host.');
  }
  return { path: needsNormalizing(path) ? normalizePath(path) : path, host };
}

/**
 * Split `http://authority/path?query` into its authority and origin-form path, or say why
 * it cannot be served: only http(s), no userinfo (RFC 9110 §4.2.4), a valid host.
 */
function absoluteForm(url: string): { authority: string; path: string } | string {
  const lower = url.slice(0, 8).toLowerCase();
  const start = lower.startsWith('http://') ? 7 : lower.startsWith('https://') ? 8 : -1;
  if (start < 0) return 'The request target is neither a path nor an http(s) URL.';
  let end = start;
  while (end < url.length) {
    const c = url.charCodeAt(end);
    if (c === 0x2f /* / */ || c === 0x3f /* ? */ || c === 0x23 /* # */) break;
    end++;
  }
  const authority = url.slice(start, end);
  if (authority.includes('@')) return 'The request target carries userinfo.';
  if (!validHost(authority)) return 'The request target has no valid host.';
  const rest = url.slice(end);
  return { authority, path: rest.charCodeAt(0) === 0x2f ? rest : `/${rest}` };
}

/** Characters of an RFC 3986 reg-name: unreserved, sub-delims and `%` (of pct-encoded). */
const REG_NAME = new Uint8Array(128);
for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=%") REG_NAME[c.charCodeAt(0)] = 1;

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

/** `s[from..]` is a port: up to five digits (RFC 3986 allows none). */
function isPort(s: string, from: number): boolean {
  if (s.length - from > 5) return false;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * A host as RFC 3986 §3.2.2 has it, with an optional port: a non-empty reg-name
 * (`gw.example.com`, `10.0.0.1`) or an IPv6 literal in brackets (`[2001:db8::1]:8443`).
 * Anything else (a space, a path, a second colon, a list) is not.
 */
export function validHost(s: string): boolean {
  if (s.charCodeAt(0) === 0x5b /* [ */) {
    const close = s.indexOf(']');
    if (close < 0 || !isIPv6(s.slice(1, close))) return false;
    return close + 1 === s.length || (s.charCodeAt(close + 1) === 0x3a /* : */ && isPort(s, close + 2));
  }
  const colon = s.indexOf(':');
  const end = colon < 0 ? s.length : colon;
  if (end === 0 || (colon >= 0 && !isPort(s, colon + 1))) return false;
  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c > 127 || REG_NAME[c] !== 1) return false;
    if (c === 0x25 /* % */) {
      if (i + 2 >= end || !isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2))) return false;
      i += 2;
    }
  }
  return true;
}

/** The path part of `url` (before `?`) contains `needle`. */
function inPath(url: string, needle: string, query: number): boolean {
  const at = url.indexOf(needle);
  return at >= 0 && (query < 0 || at < query);
}

/** Could {@link normalizePath} change `url`? A few indexOf scans, no allocation. */
function needsNormalizing(url: string): boolean {
  if (url.indexOf('#') >= 0) return true;
  const q = url.indexOf('?');
  return inPath(url, '/.', q) || inPath(url, '//', q) || inPath(url, '/%2e', q) || inPath(url, '/%2E', q);
}

/** 1 for `.`, 2 for `..`, with `%2e`/`%2E` counting as a dot (as NGINX does); else 0. */
function dotSegment(s: string): 0 | 1 | 2 {
  if (s.length === 0 || s.length > 6) return 0;
  const t = s.length <= 2 ? s : s.replace(/%2e/gi, '.');
  return t === '.' ? 1 : t === '..' ? 2 : 0;
}

/**
 * The origin-form target the gateway routes by and the instance receives: the fragment
 * dropped (it is never sent), repeated slashes merged (NGINX's `merge_slashes`, so no
 * path reaches an instance as a protocol-relative `//host/...`), and dot-segments removed
 * (RFC 3986 §5.2.4; a `..` above the root is dropped). The query is left as sent. Other
 * percent-encodings are not decoded.
 */
export function normalizePath(url: string): string {
  const hash = url.indexOf('#');
  if (hash >= 0) url = url.slice(0, hash);
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const segments = path.split('/');
  const out: string[] = [];
  // segments[0] is what precedes the leading `/` (nothing, in origin-form).
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    const dots = dotSegment(s);
    if (dots === 2) out.pop();
    if (dots !== 0 || s === '') {
      // A trailing dot-segment or slash leaves the path ending in `/`.
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}${q < 0 ? '' : url.slice(q)}`;
}

/**
 * Match a request target (origin-form, as {@link requestTarget} returns it) and Host to an
 * endpoint name and the rest of the path.
 */
export function matchRoute(url: string, host: string | undefined, hostSuffix: string | undefined): RouteMatch | undefined {
  if (url.startsWith(PREFIX)) {
    let end = PREFIX.length;
    while (end < url.length) {
      const c = url.charCodeAt(end);
      if (c === 0x2f /* / */ || c === 0x3f /* ? */) break;
      end++;
    }
    if (end === PREFIX.length) return undefined;
    const rest = url.slice(end);
    return {
      endpoint: url.slice(PREFIX.length, end),
      rest: rest === '' ? '/' : rest.charCodeAt(0) === 0x3f ? `/${rest}` : rest,
    };
  }
  if (hostSuffix && host && url.charCodeAt(0) === 0x2f) {
    const colon = host.lastIndexOf(':');
    const bare = (colon > host.lastIndexOf(']') ? host.slice(0, colon) : host).toLowerCase();
    if (bare.length > hostSuffix.length && bare.endsWith(hostSuffix)) {
      return { endpoint: bare.slice(0, -hostSuffix.length), rest: url };
    }
  }
  return undefined;
}

/** `/score` (with or without a query) → the deployment's `scoring_route`; other paths unchanged. */
export function upstreamPath(rest: string, scoringRoute: string): string {
  if (rest.startsWith('/score') && (rest.length === 6 || rest.charCodeAt(6) === 0x3f)) {
    return scoringRoute + rest.slice(6);
  }
  return rest;
}
