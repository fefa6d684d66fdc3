import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ListenerKind, Outcome, PolicyContext, PriorityClass, Termination, ThrottleReason } from '../policies/policy.ts';
import type { Principal } from '../policies/principal.ts';
import { clientIp, isTrusted, normalize } from '../policies/shared/client-ip.ts';
import { type ErrorCode, type GatewayError, sendError } from './errors.ts';
import { randomUUID } from 'node:crypto';
import type { Snapshot } from './snapshot/compile.ts';
import type { Attempt, AttemptResult } from './upstream/attempt.ts';
import type { RequestBody } from './upstream/request-body.ts';
import type { ForwardOwner } from './upstream/forward.ts';
import type { Sink } from './upstream/sink.ts';

const CLIENT_GONE = new Error('client closed the connection');
const NEVER = (): boolean => false;

/**
 * Gateway errors that say how the exchange ended: the instance failed or stalled, or the
 * request was not received in time (the client's fault, whatever the status says).
 */
const ENDED_BY: Partial<Record<ErrorCode, Termination>> = {
  BadGateway: 'upstream_reset',
  GatewayTimeout: 'upstream_timeout',
  RequestTimeout: 'client_bad_request',
};
const CLIENT_FAULT = Symbol('switchyard.clientFault');

/** A fault on the client's side of a connection, found by the HTTP parser mid-request. */
export interface ClientFault {
  readonly termination: 'client_aborted' | 'client_bad_request';
  /** What the client was sent (400), or 499 when it left. */
  readonly status: number;
}

/**
 * Record on a response that its request failed on the client's side (an upload cut short,
 * a malformed chunk): the exchange then ends as the client's fault, not the instance's.
 * Called by the listener's parser-error handler, which sees the fault first.
 */
export function markClientFault(res: ServerResponse, fault: ClientFault): void {
  (res as ServerResponse & { [CLIENT_FAULT]?: ClientFault })[CLIENT_FAULT] = fault;
}

function clientFaultOf(res: ServerResponse): ClientFault | undefined {
  return (res as ServerResponse & { [CLIENT_FAULT]?: ClientFault })[CLIENT_FAULT];
}

/**
 * Everything about one request/response exchange, in one object (Caddy's advice: not ten
 * arguments threaded through the proxy loop). What is known at arrival is set in the
 * constructor; the walk fills in the rest. It is the policies' {@link PolicyContext} and
 * the live response's {@link Sink}: one object per request, nothing else allocated unless
 * a step asks (the abort signal, after-hooks and extra headers are created on first use).
 */
export class Exchange implements PolicyContext, Sink, ForwardOwner {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly listener: ListenerKind;
  /** The snapshot this request uses from start to end (read once). */
  readonly snapshot: Snapshot;
  readonly requestId: string;
  /** `performance.now()` at arrival (ms, monotonic). */
  readonly start: number;
  /** The socket peer's address (IPv4-mapped IPv6 unwrapped). */
  readonly peer: string;
  /** The peer is one of `server.trusted_proxies`: its X-Forwarded-* headers are believed. */
  readonly peerTrusted: boolean;
  /** The client's address: the peer, or from X-Forwarded-For when the peer is a trusted proxy. */
  readonly clientIp: string;
  /** The client sent `Expect: 100-continue` and waits to be invited to upload. */
  readonly expectContinue: boolean;

  /** Path and query after the endpoint prefix, as sent upstream (before `score` is mapped). */
  upstreamPath = '/';
  endpoint = '';
  deployment = '';
  /** The caller named the deployment (`azureml-model-deployment`): no split, no mirror. */
  pinned = false;
  principal: Principal | undefined;
  priority: PriorityClass = 'standard';
  /** The request body as read before the deployment stage (null: none). */
  body: RequestBody = null;
  /** The gateway error that answered the request, if one did. */
  error: ErrorCode | undefined;
  /** Why a policy turned the request away to protect the models, if one did. */
  throttle: ThrottleReason | undefined;
  /** How the exchange ended, when something other than a normal completion decided it. */
  termination: Termination | undefined;
  /** The upstream attempt in progress, aborted if the client goes away. */
  attempt: Attempt | undefined;
  /** Origin of the last instance tried, and whether its connect failed. */
  instance: string | undefined;
  connectFailed = false;

  #controller: AbortController | undefined;
  /** The first after-hook (most requests have one: the concurrency permit), then the rest. */
  #after1: ((o: Outcome) => void) | undefined;
  #after: ((o: Outcome) => void)[] | undefined;
  #headers: [name: string, value: string, lower: string][] | undefined;
  #closed = false;

  /** The gateway is draining: every response closes its connection (Envoy's drain does the same). */
  readonly #draining: () => boolean;

  constructor(req: IncomingMessage, res: ServerResponse, listener: ListenerKind, snapshot: Snapshot, expectContinue: boolean, draining: () => boolean = NEVER) {
    this.req = req;
    this.#draining = draining;
    this.res = res;
    this.listener = listener;
    this.snapshot = snapshot;
    this.expectContinue = expectContinue;
    this.requestId = randomUUID();
    this.start = performance.now();
    // The peer and whether it is a trusted proxy are worked out once: the client address
    // and the X-Forwarded-* headers for the instance both follow from them.
    const peer = normalize(req.socket.remoteAddress ?? '');
    const trusted = snapshot.trustedProxies;
    this.peer = peer;
    this.peerTrusted = trusted !== undefined && isTrusted(trusted, peer);
    this.clientIp = clientIp(peer, this.peerTrusted, req.headers['x-forwarded-for'], trusted);
  }

  get headers(): IncomingHttpHeaders {
    return this.req.headers;
  }

  /** Aborts when the client goes away before the response finished. Created on first use. */
  get signal(): AbortSignal {
    this.#controller ??= new AbortController();
    if (this.#closed && !this.#controller.signal.aborted && !this.res.writableFinished) this.#controller.abort(CLIENT_GONE);
    return this.#controller.signal;
  }

  /** Run `fn` exactly once when the exchange ends (client abort included); hooks run in reverse order. */
  after(fn: (o: Outcome) => void): void {
    if (this.#after1 === undefined) this.#after1 = fn;
    else (this.#after ??= []).push(fn);
  }

  addResponseHeader(name: string, value: string): void {
    (this.#headers ??= []).push([name, value, name.toLowerCase()]);
  }

  // ---- Sink: the live response ------------------------------------------------------------

  get destroyed(): boolean {
    return this.res.destroyed;
  }

  get started(): boolean {
    return this.res.headersSent;
  }

  /** Write the instance's status and (already filtered) headers, plus the gateway's own. */
  writeHead(status: number, headers: string[]): void {
    headers.push('x-request-id', this.requestId, 'azureml-model-deployment', this.deployment);
    // A drain that began while this request was in flight: its connection closes after it.
    if (this.#draining()) headers.push('connection', 'close');
    const extra = this.#headers;
    if (extra) {
      // A policy's header (RateLimit-*, say) replaces the instance's of the same name. There
      // are one to three of them: a scan, no Set.
      const kept: string[] = [];
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!.toLowerCase();
        let mine = false;
        for (let j = 0; j < extra.length; j++) if (extra[j]![2] === name) { mine = true; break; }
        if (!mine) kept.push(headers[i]!, headers[i + 1]!);
      }
      for (const [n, v] of extra) kept.push(n, v);
      headers = kept;
    }
    this.res.writeHead(status, headers);
  }

  flushHeaders(): void {
    this.res.flushHeaders();
  }

  earlyHints(headers: IncomingHttpHeaders): void {
    const link = headers.link;
    // Node sends 103 only with Link, the header early hints exist for; never to an
    // HTTP/1.0 client, which does not expect interim responses (RFC 9110 §15.2).
    if (link && !this.res.headersSent && (this.req.httpVersionMajor > 1 || this.req.httpVersionMinor > 0)) this.res.writeEarlyHints({ link });
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.res.once('drain', fn);
  }

  end(): void {
    this.res.end();
  }

  /** Headers are out and the instance failed: the client can only learn it from a cut connection. */
  cut(): void {
    this.res.destroy();
  }

  /** The forward ended: a response streamed (whole or cut), or a gateway error to send. */
  forwarded(r: AttemptResult): void {
    // Closed, or already answered (an upload that stalled): nothing more to say.
    if (this.#closed || this.error !== undefined) return;
    if (r.kind === 'response') {
      // The instance failed midway: the client saw the status and then a cut connection.
      if (!r.complete) this.termination = r.cut ?? 'upstream_reset';
      return;
    }
    this.fail(r.error);
  }

  /** The client stopped sending its (streamed) body: 408 if the instance has not answered yet, else a cut. */
  uploadStalled(err: GatewayError): void {
    if (this.#closed) return;
    this.attempt?.abort(err);
    this.fail(err);
  }

  // ---- ending ----------------------------------------------------------------------------

  /** Answer with a gateway error (or cut the connection if the response already started). */
  fail(err: GatewayError, reason?: ThrottleReason): void {
    this.error = err.code;
    const ended = ENDED_BY[err.code];
    if (ended) this.termination = ended;
    if (reason) this.throttle = reason;
    const res = this.res;
    if (!res.headersSent) {
      // SPEC §3: once a deployment was chosen, every response names it (a 502/504 included).
      if (this.deployment) res.setHeader('azureml-model-deployment', this.deployment);
      if (this.#headers) for (const [n, v] of this.#headers) res.setHeader(n, v);
      // The client was never invited to upload: the body will not follow, so the connection
      // cannot be reused (its next bytes would be read as this request's body). And during a
      // drain every response closes its connection.
      if (this.expectContinue || this.#draining()) res.setHeader('connection', 'close');
    }
    sendError(res, err, this.requestId);
  }

  /**
   * The response closed (finished or cut off): settle how it ended, abort what is in
   * flight, then run the after-hooks once, in reverse order. `shuttingDown`: the gateway
   * closed the connection at the end of its drain. Returns the outcome for the observer.
   *
   * `status` is what the client was sent; a client that left before the response finished
   * is 499 (NGINX's convention), and `termination` says how the exchange ended.
   */
  close(shuttingDown: boolean, onHookError?: (err: unknown) => void): Outcome {
    this.#closed = true;
    const res = this.res;
    let status: number;
    let termination: Termination;
    const fault = clientFaultOf(res);
    if (res.writableFinished) {
      status = res.statusCode;
      termination = this.termination ?? 'completed';
    } else if (fault) {
      status = fault.status;
      termination = fault.termination;
    } else if (shuttingDown) {
      status = res.headersSent ? res.statusCode : 503;
      termination = 'shutdown';
    } else if (this.termination === undefined || this.termination === 'client_aborted') {
      // The client left, or was cut for not reading: its doing either way.
      status = 499;
      termination = 'client_aborted';
    } else {
      // The gateway cut the stream because the instance failed or stalled midway.
      status = res.headersSent ? res.statusCode : 502;
      termination = this.termination;
    }
    if (!res.writableFinished) {
      this.attempt?.abort(CLIENT_GONE);
      if (this.#controller && !this.#controller.signal.aborted) this.#controller.abort(CLIENT_GONE);
    }
    const outcome: Outcome = {
      status,
      error: this.error,
      termination,
      connectFailed: this.connectFailed,
      instance: this.instance,
      durationMs: performance.now() - this.start,
    };
    const hooks = this.#after;
    if (hooks) {
      this.#after = undefined;
      for (let i = hooks.length - 1; i >= 0; i--) runHook(hooks[i]!, outcome, onHookError);
    }
    const first = this.#after1;
    if (first) {
      this.#after1 = undefined;
      runHook(first, outcome, onHookError);
    }
    return outcome;
  }
}

/** One failing hook must not keep the others (releasing permits, say) from running. */
function runHook(fn: (o: Outcome) => void, outcome: Outcome, onError: ((err: unknown) => void) | undefined): void {
  try {
    fn(outcome);
  } catch (err) {
    onError?.(err);
  }
}
