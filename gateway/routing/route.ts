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

const PREFIX = '/endpoints/';

/** Match a request URL (and Host) to an endpoint name and the rest of the path. */
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
  if (hostSuffix && host) {
    const colon = host.lastIndexOf(':');
    const bare = (colon > host.lastIndexOf(']') ? host.slice(0, colon) : host).toLowerCase();
    if (bare.length > hostSuffix.length && bare.endsWith(hostSuffix)) {
      return { endpoint: bare.slice(0, -hostSuffix.length), rest: url.startsWith('/') ? url : `/${url}` };
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
