import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import type { CompiledDeployment, CompiledEndpoint, Snapshot } from '../config/compile.ts';
import { clientIp, isTrusted, normalize } from '../policies/network/client-ip.ts';
import type { Verdict } from '../policies/policy.ts';
import type { Clock } from './clock.ts';
import { RequestContext, type ListenerKind } from './context.ts';
import { GatewayError, sendError } from './errors.ts';
import { runPolicies } from './pipeline.ts';
import { matchRoute, upstreamPath } from './route.ts';
import type { RequestObserver } from './request-observer.ts';
import { Attempt, type AttemptResult } from './upstream/forward.ts';
import { upstreamHeaders, type ForwardedFor } from './upstream/headers.ts';
import type { Instance } from './upstream/instance.ts';
import { pickInstance } from './upstream/select.ts';

/** What the handler needs from the gateway around it. */
export interface ProxyDeps {
  /** The current snapshot, read once per request. */
  readonly snapshot: () => Snapshot;
  readonly draining: () => boolean;
  readonly observer: RequestObserver;
  /** Called once per request when its response closed (after it was recorded). */
  readonly onEnd?: () => void;
  readonly clock: Clock;
  readonly random: () => number;
}

const NOT_FOUND = new GatewayError('EndpointNotFound');
const CLIENT_GONE = new Error('client closed the connection');
// The rest of an oversized body is not read: the connection cannot be reused.
const TOO_LARGE = new GatewayError('PayloadTooLarge', undefined, { connection: 'close' });
const DRAINING = new GatewayError('Draining', undefined, { connection: 'close' });

/** Counts streamed (chunked) request bytes and fails the upload past the limit. */
class BodyLimit extends Transform {
  #left: number;
  constructor(limit: number) {
    super();
    this.#left = limit;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#left -= chunk.length;
    if (this.#left < 0) cb(TOO_LARGE);
    else cb(null, chunk);
  }
}

/**
 * The invocation data path: route → policies → deployment → instance → stream. One
 * instance of this serves every public/private listener; the snapshot is read once at
 * the start of each request, so a reload never changes a request midway.
 */
export class ProxyHandler {
  readonly #deps: ProxyDeps;

  constructor(deps: ProxyDeps) {
    this.#deps = deps;
  }

  /**
   * Handle one request that arrived on `listener`. `expectContinue`: the client sent
   * `Expect: 100-continue` and waits; it is invited to upload only once the request was
   * accepted (routed, authenticated, within the size limit), so a 401/404/413 costs it
   * no upload (RFC 9110 §10.1.1).
   */
  handle(req: IncomingMessage, res: ServerResponse, listener: ListenerKind, expectContinue = false): void {
    const snap = this.#deps.snapshot();
    // The peer and whether it is a trusted proxy are worked out once: the client address
    // and the X-Forwarded-* headers for the instance both follow from them.
    const peer = normalize(req.socket.remoteAddress ?? '');
    const peerTrusted = snap.trustedProxies !== undefined && isTrusted(snap.trustedProxies, peer);
    const ctx = new RequestContext(req, res, listener,
      clientIp(peer, peerTrusted, req.headers['x-forwarded-for'], snap.trustedProxies));
    ctx.peer = peer;
    ctx.peerTrusted = peerTrusted;
    ctx.expectContinue = expectContinue;
    // One close listener per request: abort what is in flight, record, count down.
    res.once('close', () => this.#closed(ctx));
    if (this.#deps.draining()) return this.#fail(ctx, DRAINING);

    const m = matchRoute(req.url ?? '/', req.headers.host, snap.hostSuffix);
    const endpoint = m && snap.endpoints.get(m.endpoint);
    if (!m || !endpoint) return this.#fail(ctx, NOT_FOUND);
    ctx.endpoint = endpoint.name;
    ctx.upstreamPath = m.rest;

    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = runPolicies(ctx, endpoint.policies);
    } catch (err) {
      return this.#internal(ctx, err);
    }
    if (verdict instanceof Promise) {
      verdict.then((v) => this.#afterPolicies(ctx, snap, endpoint, v), (err: unknown) => this.#internal(ctx, err));
    } else {
      this.#afterPolicies(ctx, snap, endpoint, verdict);
    }
  }

  #afterPolicies(ctx: RequestContext, snap: Snapshot, endpoint: CompiledEndpoint, verdict: Verdict): void {
    if (verdict.kind === 'reject') return this.#fail(ctx, verdict.error);
    if (ctx.res.destroyed) return;
    const deployment = this.#chooseDeployment(ctx, endpoint);
    if (deployment instanceof GatewayError) return this.#fail(ctx, deployment);
    ctx.deployment = deployment.name;

    const req = ctx.req;
    const cl = req.headers['content-length'];
    let body: IncomingMessage | BodyLimit | null = null;
    if (cl !== undefined) {
      if (Number(cl) > snap.maxBodyBytes) return this.#fail(ctx, TOO_LARGE);
      if (cl !== '0') body = req;
    } else if (req.headers['transfer-encoding'] !== undefined) {
      body = req.pipe(new BodyLimit(snap.maxBodyBytes));
    }

    if (ctx.expectContinue && body) ctx.res.writeContinue();
    const headers = upstreamHeaders(req.rawHeaders, req.headers.connection, forwarded(ctx));
    const request = {
      method: req.method ?? 'GET',
      path: upstreamPath(ctx.upstreamPath, deployment.scoringRoute),
      headers,
      body,
      timeoutMs: deployment.timeoutMs,
    };
    this.#attempt(ctx, deployment, request, undefined);
  }

  #chooseDeployment(ctx: RequestContext, endpoint: CompiledEndpoint): CompiledDeployment | GatewayError {
    const named = ctx.req.headers['azureml-model-deployment'];
    if (typeof named === 'string' && named !== '') {
      return endpoint.deployments.get(named) ?? new GatewayError('DeploymentNotFound', `No deployment named ${JSON.stringify(named.slice(0, 64))} on this endpoint.`);
    }
    const name = endpoint.split.next();
    return (name !== undefined && endpoint.deployments.get(name)) || new GatewayError('NoPositiveTraffic');
  }

  /** Send to one instance; on a connect failure (nothing was sent) retry once on another. */
  #attempt(ctx: RequestContext, deployment: CompiledDeployment, request: Parameters<Attempt['start']>[0], failed: Instance | undefined): void {
    const instance = pickInstance(deployment.instances, this.#deps.clock(), this.#deps.random, failed);
    if (!instance) {
      return this.#fail(ctx, failed ? new GatewayError('BadGateway', 'The model instance refused the connection.') : new GatewayError('NoReadyInstance'));
    }
    const attempt = new Attempt(ctx.res, ctx.requestId, deployment.name, instance, (r: AttemptResult) => {
      ctx.inFlight = undefined;
      if (r.kind === 'response') {
        // The instance failed midway: the client saw a cut connection, logged as 502.
        if (!r.complete) ctx.errorCode = 'BadGateway';
        return;
      }
      if (r.connectFailed && !failed && deployment.instances.length > 1 && !ctx.res.destroyed) {
        return this.#attempt(ctx, deployment, request, instance);
      }
      this.#fail(ctx, r.error);
    });
    ctx.inFlight = attempt;
    attempt.start(request);
  }

  #closed(ctx: RequestContext): void {
    ctx.inFlight?.abort(CLIENT_GONE);
    this.#deps.observer.end(ctx);
    this.#deps.onEnd?.();
  }

  #fail(ctx: RequestContext, err: GatewayError): void {
    ctx.errorCode = err.code;
    // SPEC §3: once a deployment was chosen, every response names it (a 502/504 included).
    if (ctx.deployment && !ctx.res.headersSent) ctx.res.setHeader('azureml-model-deployment', ctx.deployment);
    // The client was never invited to upload: the body will not follow, so the connection
    // cannot be reused (its next bytes would be read as this request's body).
    if (ctx.expectContinue && !ctx.res.headersSent) ctx.res.setHeader('connection', 'close');
    sendError(ctx.res, err, ctx.requestId);
  }

  #internal(ctx: RequestContext, err: unknown): void {
    this.#deps.observer.error(ctx, err);
    this.#fail(ctx, new GatewayError('InternalError'));
  }
}

/**
 * The X-Forwarded-* headers for the instance. A trusted proxy's chain is extended and its
 * proto/host kept; from anyone else they are replaced, so a client cannot forge them.
 */
function forwarded(ctx: RequestContext): ForwardedFor {
  const peer = ctx.peer;
  const h = ctx.req.headers;
  if (ctx.peerTrusted) {
    const prior = h['x-forwarded-for'];
    const proto = h['x-forwarded-proto'];
    const host = h['x-forwarded-host'];
    return {
      requestId: ctx.requestId,
      forwardedFor: prior ? `${Array.isArray(prior) ? prior.join(', ') : prior}, ${peer}` : peer,
      proto: typeof proto === 'string' && proto ? proto : 'http',
      host: typeof host === 'string' && host ? host : h.host,
    };
  }
  return { requestId: ctx.requestId, forwardedFor: peer, proto: 'http', host: h.host };
}
