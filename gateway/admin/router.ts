import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Policy, PolicyContext, Verdict } from '../../policies/policy.ts';
import type { Principal } from '../../policies/principal.ts';
import { normalize } from '../../policies/shared/client-ip.ts';
import { GatewayError, sendError } from '../errors.ts';
import { refusedHeader } from '../routing/route.ts';
import type { Logger } from '../logger.ts';

/** A reply a route returns; the router writes it (and drops the body for HEAD). */
export interface AdminReply {
  readonly status: number;
  /** JSON-serialised unless it is a string (sent as is, with `contentType`). */
  readonly body: unknown;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One admin call, as a route sees it. */
export interface AdminCall {
  readonly req: IncomingMessage;
  readonly params: Readonly<Record<string, string>>;
  /** The authenticated caller (routes with `auth: true`). */
  readonly who: Principal | undefined;
  /** The JSON body, read once the call was authenticated (the 100 Continue is sent only then). */
  json(): Promise<unknown>;
}

export type AdminMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A row of the route table. */
export interface AdminRoute {
  readonly method: AdminMethod;
  /** `/admin/endpoints/:name`: literal segments and `:param`s. */
  readonly pattern: string;
  /** Needs admin credentials (everything under /admin does). */
  readonly auth: boolean;
  readonly handle: (call: AdminCall) => AdminReply | Promise<AdminReply>;
}

const MAX_ADMIN_BODY = 1_048_576;

function segments(path: string): string[] {
  return path.split('/').filter(Boolean);
}

function match(pattern: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const v = parts[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = v;
    else if (p !== v) return undefined;
  }
  return params;
}

/** Path parameters, percent-decoded; a malformed escape is the client's error, not a 500. */
function decodeParams(raw: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    try {
      out[k] = decodeURIComponent(v);
    } catch {
      throw new GatewayError('BadRequest', 'The path has a malformed percent-escape.');
    }
  }
  return out;
}

/** The smallest policy context: the admin API authenticates with the endpoints' auth policy. */
class AdminContext implements PolicyContext {
  readonly listener = 'public' as const;
  readonly endpoint = '';
  readonly deployment = '';
  readonly pinned = false;
  readonly clientIp: string;
  readonly headers: IncomingHttpHeaders;
  principal: Principal | undefined;
  priority = 'critical' as const;
  constructor(req: IncomingMessage) {
    this.headers = req.headers;
    this.clientIp = normalize(req.socket.remoteAddress ?? '');
  }
  get signal(): AbortSignal {
    return new AbortController().signal;
  }
  addResponseHeader(): void {}
}

/** JSON nested deeper than this is refused: merge patches and the audit walk bodies recursively. */
const MAX_JSON_DEPTH = 64;

/** Member names that mean an object's prototype to some JavaScript code: never a config key. */
const PROTOTYPE_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

/** What is wrong with a parsed body's shape (too deep, a prototype name as a member), if anything. */
function shapeProblem(v: unknown): string | undefined {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (d > MAX_JSON_DEPTH) return `The body is nested deeper than ${MAX_JSON_DEPTH} levels.`;
    if (!x || typeof x !== 'object') continue;
    for (const [k, c] of Object.entries(x)) {
      if (PROTOTYPE_NAMES.has(k)) return `The body has a member named ${k}, which no config has.`;
      stack.push([c, d + 1]);
    }
  }
  return undefined;
}

/**
 * The body as JSON, at most MAX_ADMIN_BODY bytes. An oversized body is refused without
 * destroying the request (which would take the socket, and the 413, with it): reading just
 * stops, and the router answers with `Connection: close`.
 */
function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_ADMIN_BODY) return Promise.reject(new GatewayError('PayloadTooLarge'));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > MAX_ADMIN_BODY) {
        req.off('data', onData).off('end', onEnd).off('error', onError);
        req.pause();
        reject(new GatewayError('PayloadTooLarge'));
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => {
      let value: unknown;
      try {
        value = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
      } catch {
        reject(new GatewayError('BadRequest', 'The body is not valid JSON.'));
        return;
      }
      const problem = shapeProblem(value);
      if (problem) reject(new GatewayError('BadRequest', problem));
      else resolve(value);
    };
    const onError = (err: Error): void => reject(err);
    req.on('data', onData).on('end', onEnd).on('error', onError);
  });
}

export interface AdminRouterDeps {
  readonly routes: readonly AdminRoute[];
  /** The admin authentication policy of the snapshot in force. */
  readonly auth: () => Policy;
  readonly log: Logger;
  /** Where the one access line per admin call goes. */
  readonly accessLog: Logger;
}

/**
 * The admin listener's dispatcher: a route table (method, pattern, handler), auth once for
 * the routes that need it, `HEAD` wherever `GET` works (RFC 9110 §9.3.2), 405 with `Allow`
 * for a known path and an unknown method, a header {@link refusedHeader} refuses a 400
 * before anything else, and one access line per call (who, what, status; never a credential). `Expect: 100-continue` is honoured only after authentication.
 */
export function adminRouter(deps: AdminRouterDeps): (req: IncomingMessage, res: ServerResponse, expectContinue: boolean) => void {
  const table = deps.routes.map((r) => ({ ...r, parts: segments(r.pattern) }));
  return (req, res, expectContinue) => {
    const start = performance.now();
    const requestId = randomUUID();
    // Read now: once a request is destroyed its socket is gone.
    const clientIp = normalize(req.socket.remoteAddress ?? '');
    const state: { who?: Principal; error?: string } = {};
    // Every admin response names its request id, which the access line carries too.
    res.setHeader('x-request-id', requestId);
    res.once('close', () => {
      deps.accessLog.info({
        request_id: requestId,
        method: req.method,
        path: (req.url ?? '/').split('?')[0],
        status: res.writableFinished ? res.statusCode : 499,
        duration_ms: Math.round((performance.now() - start) * 1e3) / 1e3,
        auth: state.who?.type,
        caller: state.who?.id,
        client_ip: clientIp,
        error: state.error,
      }, 'admin request');
    });
    const fail = (err: unknown): void => {
      const e = err instanceof GatewayError ? err : new GatewayError('InternalError');
      if (!(err instanceof GatewayError)) deps.log.error({ err, request_id: requestId }, 'admin request failed');
      state.error = e.code;
      // A refused upload was never invited, and an oversized one was not read to its end:
      // its bytes must not be read as the next request.
      // The same for a body an error answered before it was read whole (a 401 to an upload).
      if ((expectContinue || !req.complete) && !res.headersSent) res.setHeader('connection', 'close');
      sendError(res, e, requestId);
    };
    dispatch(deps, table, req, res, expectContinue, state).catch(fail);
  };
}

async function dispatch(
  deps: AdminRouterDeps,
  table: readonly (AdminRoute & { parts: string[] })[],
  req: IncomingMessage,
  res: ServerResponse,
  expectContinue: boolean,
  state: { who?: Principal },
): Promise<void> {
  // Two Host or two Authorization lines, an Upgrade: 400 before anything else, as on the invocation listeners.
  const refused = refusedHeader(req.rawHeaders);
  if (refused) throw refused;
  const parts = segments((req.url ?? '/').split('?')[0] ?? '/');
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  const candidates = table.flatMap((r) => {
    const params = match(r.parts, parts);
    return params ? [{ route: r, params }] : [];
  });
  const underAdmin = parts[0] === 'admin';
  const needsAuth = underAdmin || candidates.some((c) => c.route.auth);
  if (needsAuth) {
    // Authenticate before anything else, even a 404 or 405: the API's shape is not told to strangers.
    const ctx = new AdminContext(req);
    const v: Verdict = await deps.auth().evaluate(ctx);
    if (v.kind === 'reject') throw v.error;
    state.who = ctx.principal;
  }
  if (candidates.length === 0) throw new GatewayError('NotFound');
  const hit = candidates.find((c) => c.route.method === method);
  if (!hit) {
    // RFC 9110 §15.5.6: a 405 says which methods the resource does support.
    const allow = [...new Set(candidates.flatMap((c) => (c.route.method === 'GET' ? ['GET', 'HEAD'] : [c.route.method])))].join(', ');
    throw new GatewayError('MethodNotAllowed', undefined, { allow });
  }
  let bodyRead: Promise<unknown> | undefined;
  const call: AdminCall = {
    req,
    params: decodeParams(hit.params),
    who: state.who,
    json: () => {
      if (expectContinue) res.writeContinue();
      bodyRead ??= readJson(req);
      return bodyRead;
    },
  };
  const reply = await hit.route.handle(call);
  const text = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': reply.contentType ?? 'application/json',
    'content-length': Buffer.byteLength(text),
    ...reply.headers,
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}
