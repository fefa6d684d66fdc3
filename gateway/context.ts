import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Principal } from '../policies/principal.ts';

/** What a request can abort when its client goes away (the attempt in flight). */
export interface Abortable {
  abort(reason: Error): void;
}

/** Which listener a request arrived on. The admin listener never serves invocations. */
export type ListenerKind = 'public' | 'private';

/**
 * Per-request state, one object for the whole exchange (Caddy's advice: not ten
 * arguments threaded through the proxy loop).
 */
export class RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly listener: ListenerKind;
  readonly requestId: string;
  /** `performance.now()` at arrival (ms, monotonic). */
  readonly start: number;
  /** The client's address: the socket peer, or from X-Forwarded-For when the peer is a trusted proxy. */
  readonly clientIp: string;
  /** The socket peer's address (IPv4-mapped IPv6 unwrapped). */
  peer = '';
  /** The peer is one of `server.trusted_proxies`: its X-Forwarded-* headers are believed. */
  peerTrusted = false;
  /** Path and query after the endpoint prefix, as sent upstream. */
  upstreamPath = '/';
  endpoint = '';
  deployment = '';
  principal: Principal | undefined;
  /** The gateway error that answered the request, if one did. */
  errorCode: string | undefined;
  /** The client sent `Expect: 100-continue` and has not been invited to upload yet. */
  expectContinue = false;
  /** The upstream attempt in flight, aborted if the client goes away. */
  inFlight: Abortable | undefined;

  constructor(req: IncomingMessage, res: ServerResponse, listener: ListenerKind, clientIp: string) {
    this.req = req;
    this.res = res;
    this.listener = listener;
    this.clientIp = clientIp;
    this.requestId = randomUUID();
    this.start = performance.now();
  }

}
