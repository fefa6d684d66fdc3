import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ListenerKind, Outcome, PolicyContext, Termination, ThrottleReason } from '../policies/policy.ts';
import type { Principal } from '../policies/principal.ts';
import { clientIp, isTrusted, normalize } from '../policies/shared/client-ip.ts';
import { type ErrorCode, type GatewayError, sendError } from './errors.ts';
import type { Snapshot } from './snapshot/compile.ts';
import type { Attempt, AttemptResult } from './upstream/attempt.ts';
import type { ForwardOwner } from './upstream/forward.ts';
import type { Sink } from './upstream/sink.ts';

const CLIENT_GONE = new Error('client closed the connection');

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
  #after: ((o: Outcome) => void)[] | undefined;
  #headers: [string, string][] | undefined;
  #closed = false;

  constructor(req: IncomingMessage, res: ServerResponse, listener: ListenerKind, snapshot: Snapshot, expectContinue: boolean) {
    this.req = req;
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
    (this.#after ??= []).push(fn);
  }

  addResponseHeader(name: string, value: string): void {
    (this.#headers ??= []).push([name, value]);
  }

  // ---- Sink: the live response ------------------------------------------------------------

  get destroyed(): boolean {
    return this.res.destroyed;
  }

  get started(): boolean {
    return this.res.headersSent;
  }

  /** Write the instance's status and (already filtered) headers, plus the gateway's own. */
  writeHead(status: number, headers: OutgoingHttpHeaders): void {
    headers['x-request-id'] = this.requestId;
    headers['azureml-model-deployment'] = this.deployment;
    if (this.#headers) for (const [n, v] of this.#headers) headers[n] = v;
    this.res.writeHead(status, headers);
  }

  flushHeaders(): void {
    this.res.flushHeaders();
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
    if (r.kind === 'response') {
      // The instance failed midway: the client saw a cut connection, logged as 502.
      if (!r.complete) this.error = 'BadGateway';
      return;
    }
    this.fail(r.error);
  }

  // ---- ending ----------------------------------------------------------------------------

  /** Answer with a gateway error (or cut the connection if the response already started). */
  fail(err: GatewayError, reason?: ThrottleReason): void {
    this.error = err.code;
    if (reason) this.throttle = reason;
    const res = this.res;
    if (!res.headersSent) {
      // SPEC §3: once a deployment was chosen, every response names it (a 502/504 included).
      if (this.deployment) res.setHeader('azureml-model-deployment', this.deployment);
      if (this.#headers) for (const [n, v] of this.#headers) res.setHeader(n, v);
      // The client was never invited to upload: the body will not follow, so the connection
      // cannot be reused (its next bytes would be read as this request's body).
      if (this.expectContinue) res.setHeader('connection', 'close');
    }
    sendError(res, err, this.requestId);
  }

  /**
   * The response closed (finished or cut off): abort what is in flight, then run the
   * after-hooks once, in reverse order. Returns the outcome for the observer.
   */
  close(onHookError?: (err: unknown) => void): Outcome {
    this.#closed = true;
    const res = this.res;
    const finished = res.writableFinished;
    if (!finished) {
      this.attempt?.abort(CLIENT_GONE);
      if (this.#controller && !this.#controller.signal.aborted) this.#controller.abort(CLIENT_GONE);
    }
    // A response cut off before it finished: 502 when the instance failed midway, else the
    // client went away and it counts as 499, as NGINX does.
    const status = finished ? res.statusCode : this.error === 'BadGateway' ? 502 : 499;
    const outcome: Outcome = {
      status,
      error: this.error,
      termination: this.termination ?? (finished ? 'completed' : this.error === 'BadGateway' ? 'upstream_reset' : 'client_aborted'),
      connectFailed: this.connectFailed,
      instance: this.instance,
      durationMs: performance.now() - this.start,
    };
    const hooks = this.#after;
    if (hooks) {
      this.#after = undefined;
      for (let i = hooks.length - 1; i >= 0; i--) {
        // One failing hook must not keep the others (releasing permits, say) from running.
        try {
          hooks[i]!(outcome);
        } catch (err) {
          onHookError?.(err);
        }
      }
    }
    return outcome;
  }
}
