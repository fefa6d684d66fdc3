import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { ListenerKind, Verdict } from '../policies/policy.ts';
import type { Clock } from './clock.ts';
import { GatewayError } from './errors.ts';
import { Exchange } from './exchange.ts';
import { runPolicies } from './pipeline.ts';
import type { RequestObserver } from './request-observer.ts';
import { matchRoute, requestTarget, upstreamPath } from './routing/route.ts';
import { selectDeployment } from './routing/select-deployment.ts';
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
}

const BUSY = Symbol('switchyard.busy');
const QUEUE = Symbol('switchyard.queue');
/** A client connection, with the requests it pipelined behind the one in flight. */
type Connection = Socket & { [BUSY]?: boolean; [QUEUE]?: (() => void)[] };

const NOT_FOUND = new GatewayError('EndpointNotFound');
const DRAINING = new GatewayError('Draining', undefined, { connection: 'close' });
const INTERNAL = new GatewayError('InternalError');

/**
 * The invocation data path, one walk, each step once and in order:
 *
 *   route → endpoint policies → select deployment → body → deployment policies → (mirror) → forward
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
    const ex = new Exchange(req, res, listener, deps.snapshot(), expectContinue);
    // One close listener per request: abort what is in flight, run after-hooks, record.
    res.once('close', () => {
      const outcome = ex.close(deps.closing(), (err) => deps.observer.error(ex, err));
      deps.observer.end(ex, outcome);
      deps.onEnd();
      const next = conn[QUEUE]?.shift();
      if (next) next();
      else conn[BUSY] = false;
    });
    if (deps.draining()) return ex.fail(DRAINING);

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
    if (deployment) return this.#forward(ex, deployment);
    const chosen = selectDeployment(ex, endpoint);
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

  #deploymentStage(ex: Exchange, endpoint: CompiledEndpoint, deployment: CompiledDeployment): void {
    if (deployment.policies.length === 0) return this.#forward(ex, deployment);
    this.#policies(ex, endpoint, deployment);
  }

  #forward(ex: Exchange, deployment: CompiledDeployment): void {
    // The mirror plan slots in here: it sees the chosen deployment and whether it was pinned.
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
    new Forward(ex, ex, deployment, request, this.#deps.clock, this.#deps.random).start();
  }

  #internal(ex: Exchange, err: unknown): void {
    this.#deps.observer.error(ex, err);
    ex.fail(INTERNAL);
  }
}
