import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { ListenerKind, Verdict } from '../policies/policy.ts';
import type { Clock } from './clock.ts';
import { BUSY, IDLE_SINCE, QUEUE, type Connection } from './connection.ts';
import { GatewayError } from './errors.ts';
import { Exchange } from './exchange.ts';
import { runPolicies } from './pipeline.ts';
import type { RequestObserver } from './request-observer.ts';
import { matchRoute, requestTarget, upstreamPath } from './routing/route.ts';
import { NONE_READY, selectDeployment } from './routing/select-deployment.ts';
import type { ReadyWaiters } from './health/ready-waiters.ts';
import type { CompiledDeployment, CompiledEndpoint, Snapshot } from './snapshot/compile.ts';
import { hasBody, readBody } from './upstream/body.ts';
import { Forward } from './upstream/forward.ts';
import { forwardedFor, upstreamHeaders } from './upstream/headers.ts';

/** What the walk needs from the gateway around it. */
export interface HandlerDeps {
  /** The current snapshot, read once per request. */
  readonly snapshot: () => Snapshot;
  readonly draining: () => boolean;
  /** The drain's grace is over: connections still open are being closed. */
  readonly closing: () => boolean;
  readonly observer: RequestObserver;
  /** Called once per request, when it began and when its response closed (after it was recorded). */
  readonly onStart: () => void;
  readonly onEnd: () => void;
  readonly clock: Clock;
  readonly random: () => number;
  /** Where requests wait when no instance they could go to is ready. */
  readonly readyWaiters: ReadyWaiters;
}


const NOT_FOUND = new GatewayError('EndpointNotFound');
const INTERNAL = new GatewayError('InternalError');
const NO_READY = new GatewayError('NoReadyInstance');

/**
 * The invocation data path, one walk, each step once and in order:
 *
 *   route → endpoint policies → select deployment → body → deployment policies → mirror → forward
 *
 * No step calls back into an earlier one; the only way back is the exchange's after-hooks,
 * which are data. The walk stays synchronous until a policy returns a promise.
 */
export class Handler {
  readonly #deps: HandlerDeps;

  constructor(deps: HandlerDeps) {
    this.#deps = deps;
  }

  /**
   * Serve one request that arrived on `listener`. `expectContinue`: the client sent
   * `Expect: 100-continue` and waits to be invited to upload.
   */
  serve(req: IncomingMessage, res: ServerResponse, listener: ListenerKind, expectContinue: boolean): void {
    // One request in flight upstream per client connection: pipelined requests wait their
    // turn, so one connection cannot occupy an instance's whole pool.
    const conn = req.socket as Connection;
    if (conn[BUSY]) {
      (conn[QUEUE] ??= []).push(() => this.#begin(conn, req, res, listener, expectContinue));
      return;
    }
    conn[BUSY] = true;
    this.#begin(conn, req, res, listener, expectContinue);
  }

  #begin(conn: Connection, req: IncomingMessage, res: ServerResponse, listener: ListenerKind, expectContinue: boolean): void {
    const deps = this.#deps;
    deps.onStart();
    const ex = new Exchange(req, res, listener, deps.snapshot(), expectContinue, deps.draining);
    // One close listener per request: abort what is in flight, run after-hooks, record.
    res.once('close', () => {
      const outcome = ex.close(deps.closing(), (err) => deps.observer.error(ex, err));
      deps.observer.end(ex, outcome);
      deps.onEnd();
      const next = conn[QUEUE]?.shift();
      if (next) next();
      else {
        conn[BUSY] = false;
        conn[IDLE_SINCE] = ex.start + outcome.durationMs;
      }
    });
    // Draining: requests on connections already open are still served, and each response
    // closes its connection (the exchange adds Connection: close), so the client's next
    // request opens one to a process that accepts (a rolling restart loses nothing). Only
    // the grace period's end cuts them.

    // A duplicate or invalid Host, or an unusable target, is 400; the path is normalised.
    const target = requestTarget(req.url ?? '/', req.rawHeaders, req.headers.host);
    if (target instanceof GatewayError) return ex.fail(target);
    // RFC 9112 §3.2.2: an absolute-form target's authority replaces Host (policies and x-forwarded-host see it).
    if (target.host !== req.headers.host) req.headers.host = target.host;
    const m = matchRoute(target.path, target.host, ex.snapshot.hostSuffix);
    const endpoint = m && ex.snapshot.endpoints.get(m.endpoint);
    if (!m || !endpoint) return ex.fail(NOT_FOUND);
    ex.endpoint = endpoint.name;
    ex.upstreamPath = m.rest;
    this.#policies(ex, endpoint, undefined);
  }

  /** Run a stage's policies, then go on with `next` (sync unless a policy is async). */
  #policies(ex: Exchange, endpoint: CompiledEndpoint, deployment: CompiledDeployment | undefined): void {
    const list = deployment ? deployment.policies : endpoint.policies;
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = runPolicies(ex, list);
    } catch (err) {
      return this.#internal(ex, err);
    }
    if (verdict instanceof Promise) {
      verdict.then((v) => this.#afterStage(ex, endpoint, deployment, v), (err: unknown) => this.#internal(ex, err));
    } else {
      this.#afterStage(ex, endpoint, deployment, verdict);
    }
  }

  #afterStage(ex: Exchange, endpoint: CompiledEndpoint, deployment: CompiledDeployment | undefined, v: Verdict): void {
    if (v.kind === 'reject') return ex.fail(v.error, v.reason);
    if (ex.res.destroyed) return;
    if (deployment) return this.#forward(ex, endpoint, deployment);
    this.#choose(ex, endpoint, undefined);
  }

  /**
   * Select the deployment. When none the request could go to has a ready instance, wait
   * (up to `max_queue_wait_ms`, until `deadline` once waiting began) for a readiness change
   * and choose again; then 503.
   */
  #choose(ex: Exchange, endpoint: CompiledEndpoint, deadline: number | undefined): void {
    const chosen = selectDeployment(ex, endpoint, this.#deps.clock());
    if (chosen === NONE_READY) return this.#awaitReady(ex, endpoint, deadline);
    if (chosen instanceof GatewayError) return ex.fail(chosen);
    ex.deployment = chosen.name;
    if (!hasBody(ex.req)) return this.#deploymentStage(ex, endpoint, chosen);
    // The body is in hand (buffered, spooled, or known to stream) before the deployment
    // stage, so a slow upload never holds one of the model's concurrency slots.
    readBody(ex, ex.snapshot.body, (err) => this.#deps.observer.error(ex, err), (body) => {
      if (body instanceof GatewayError) return ex.fail(body);
      ex.body = body;
      this.#deploymentStage(ex, endpoint, chosen);
    });
  }

  #awaitReady(ex: Exchange, endpoint: CompiledEndpoint, deadline: number | undefined): void {
    const waiters = this.#deps.readyWaiters;
    // A pinned request waits for its own deployment (selectDeployment named it on the exchange).
    const named = ex.pinned ? endpoint.deployments.get(ex.deployment) : undefined;
    const now = waiters.now;
    const waitMs = named ? named.queueWaitMs : endpoint.queueWaitMs;
    const until = deadline ?? now + waitMs;
    if (until <= now) return ex.fail(NO_READY);
    // As many may wait as the deployments' queues would hold; past that, 429 at once.
    if (deadline === undefined && waiters.waiting(endpoint.name) >= endpoint.readyWaitCapacity) {
      return ex.fail(new GatewayError('TooManyPendingRequests', undefined, { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) }), 'queue_full');
    }
    ex.after(waiters.wait(endpoint.name, until - now, (timedOut) => {
      if (ex.res.destroyed) return;
      if (timedOut) return ex.fail(NO_READY);
      this.#choose(ex, endpoint, until);
    }));
  }

  #deploymentStage(ex: Exchange, endpoint: CompiledEndpoint, deployment: CompiledDeployment): void {
    if (deployment.policies.length === 0) return this.#forward(ex, endpoint, deployment);
    this.#policies(ex, endpoint, deployment);
  }

  #forward(ex: Exchange, endpoint: CompiledEndpoint, deployment: CompiledDeployment): void {
    const req = ex.req;
    const body = ex.body;
    const headers = upstreamHeaders(req.rawHeaders, req.headers.connection, forwardedFor(ex));
    let upload: Buffer | readonly Buffer[] | Readable | null;
    if (body !== null && !Buffer.isBuffer(body) && 'stream' in body) {
      // Spooled whole: the instance gets a Content-Length even for a chunked upload.
      upload = body.stream;
      if (req.headers['content-length'] === undefined) headers.push('content-length', String(body.length));
    } else {
      upload = body;
    }
    const request = {
      method: req.method ?? 'GET',
      path: upstreamPath(ex.upstreamPath, deployment.scoringRoute),
      headers,
      body: upload,
      timeoutMs: deployment.timeoutMs,
      sendTimeoutMs: ex.snapshot.sendTimeoutMs,
    };
    // A split request (never a pinned one) may be copied to the shadow: then the live
    // answer goes through a tee that keeps a capped copy for the comparison.
    const mirror = endpoint.mirror;
    const sink = mirror !== undefined && !ex.pinned ? mirror.plan(ex, deployment, request) : ex;
    new Forward(ex, sink, deployment, request, this.#deps.clock, this.#deps.random).start();
  }

  #internal(ex: Exchange, err: unknown): void {
    this.#deps.observer.error(ex, err);
    ex.fail(INTERNAL);
  }
}
