import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { GatewayError } from '../errors.ts';
import { downstreamHeaders } from './headers.ts';
import type { Instance } from './instance.ts';
import type { Sink } from './sink.ts';
import { deadlines, type Expiring } from '../coarse-timers.ts';

function isChunkList(b: Readable | readonly Buffer[]): b is readonly Buffer[] {
  return Array.isArray(b);
}

/** Told once how an attempt ended. */
export interface AttemptListener {
  attemptDone(r: AttemptResult): void;
}

/** How one attempt at an instance ended. */
export type AttemptResult =
  /** The response streamed; when it was cut (`complete: false`), `cut` says by whom. */
  | { readonly kind: 'response'; readonly complete: boolean; readonly cut?: 'upstream_reset' | 'upstream_timeout' | 'client_aborted' }
  /** Nothing was sent to the client: the error to answer with. */
  | { readonly kind: 'error'; readonly error: GatewayError; readonly connectFailed: boolean };

/** What to send upstream. */
export interface AttemptRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: string[];
  readonly body: Readable | Buffer | readonly Buffer[] | null;
  readonly timeoutMs: number;
  /** A client that reads nothing this long is cut (`client_send_timeout_ms`). */
  readonly sendTimeoutMs: number;
}

// Errors that mean no byte reached the instance, so any request may go to another one.
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL',
]);
export const TIMED_OUT = new GatewayError('GatewayTimeout');
const COMPLETE: AttemptResult = Object.freeze({ kind: 'response', complete: true });
const CUT_OFF: AttemptResult = Object.freeze({ kind: 'response', complete: false, cut: 'upstream_reset' });
const CUT_OFF_TIMED_OUT: AttemptResult = Object.freeze({ kind: 'response', complete: false, cut: 'upstream_timeout' });
const CUT_SLOW_CLIENT: AttemptResult = Object.freeze({ kind: 'response', complete: false, cut: 'client_aborted' });
/** A response paused this long is a stalled reader's, not a moment of backpressure. */
const STALLED_AFTER_MS = 1000;
/** The client read nothing for client_send_timeout_ms, or too many stalled readers hold the instance. */
const CLIENT_TOO_SLOW = new Error('the client stopped reading its response');
const BAD_STATUS = new GatewayError('BadGateway', 'The model instance answered with a status outside 100-599.');

/**
 * One attempt to forward a request to an instance, as an undici dispatch handler: the
 * response streams to the sink chunk by chunk with backpressure (the upstream is paused
 * while the client socket is full), so SSE and other streamed answers pass unbuffered.
 */
export class Attempt implements Dispatcher.DispatchHandler, Expiring {
  readonly #sink: Sink;
  readonly #instance: Instance;
  readonly #done: AttemptListener;
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #finished = false;
  #abortReason: Error | undefined;
  // request_timeout_ms: undici's own header/body timers tick at 1 s resolution (a 200 ms
  // setting fired after ~1 s), so the shared 10 ms deadlines enforce it instead.
  deadline = 0;
  timerPrev: Expiring | undefined = undefined;
  timerNext: Expiring | undefined = undefined;
  #timeoutMs = 0;
  #sendTimeoutMs = 0;
  #uploading = false;
  #paused = false;
  /** Paused for longer than {@link STALLED_AFTER_MS}: counted against the instance's quota. */
  #stalled = false;
  #pausedAt = 0;

  constructor(sink: Sink, instance: Instance, done: AttemptListener) {
    this.#sink = sink;
    this.#instance = instance;
    this.#done = done;
  }

  /** The instance's status once its response began (0 before, or when it never answered). */
  get status(): number {
    return this.#status;
  }

  /** Send the request. */
  start(req: AttemptRequest): void {
    this.#instance.inFlight++;
    this.#timeoutMs = req.timeoutMs;
    this.#sendTimeoutMs = req.sendTimeoutMs;
    this.deadline = deadlines.now + req.timeoutMs;
    deadlines.add(this);
    const body = req.body;
    if (body && !Buffer.isBuffer(body) && !isChunkList(body) && !body.readableEnded) {
      // As with undici's headers timeout, the wait for the answer starts when the upload ends.
      this.#uploading = true;
      body.once('end', () => {
        this.#uploading = false;
        if (!this.#finished) this.#rearm();
      });
    }
    this.#instance.pool.dispatch({
      path: req.path,
      method: req.method,
      headers: req.headers,
      // A chunk list is an iterable body: undici writes each chunk (its typings list only
      // streams and buffers for dispatch; its request code takes any iterable).
      body: body as Readable | Buffer | null,
      headersTimeout: 0,
      bodyTimeout: 0,
      // Never let undici replay a request on its own: retries are decided here.
      idempotent: false,
    }, this);
  }

  /** The client went away: stop the upstream request and free its connection. */
  abort(reason: Error): void {
    if (this.#finished) return;
    if (this.#controller) this.#controller.abort(reason);
    else this.#abortReason = reason;
  }

  /**
   * No response headers within `request_timeout_ms` of the upload's end, or no body chunk
   * for as long: 504 (or a cut connection once headers are out). Time the client spends
   * uploading, or not reading (upstream paused), is not the instance's fault.
   */
  expired(): void {
    if (this.#finished) return;
    if (this.#paused) {
      const inst = this.#instance;
      if (!this.#stalled) {
        // Not reading for a second: a stalled reader, not a moment of backpressure. Stalled
        // readers may hold at most half of an instance's connections; past that this one is
        // cut, so they cannot starve everyone else of the model.
        this.#stalled = true;
        inst.stalled++;
        if (inst.stalled > inst.maxStalled) {
          this.#controller?.abort(CLIENT_TOO_SLOW);
          return;
        }
        this.deadline = this.#pausedAt + this.#sendTimeoutMs;
        deadlines.add(this);
        return;
      }
      // The client read nothing for client_send_timeout_ms (NGINX's send_timeout): it
      // holds an instance connection for nothing. Cut it; the instance is not at fault.
      this.#controller?.abort(CLIENT_TOO_SLOW);
      return;
    }
    if (this.#uploading && !this.#status) {
      this.#rearm();
      deadlines.add(this);
      return;
    }
    if (this.#controller) {
      this.#controller.abort(TIMED_OUT);
      return;
    }
    // Still queued in the pool: answer now; onRequestStart aborts the request later.
    this.#abortReason = TIMED_OUT;
    this.#finish({ kind: 'error', error: TIMED_OUT, connectFailed: false });
  }

  #unpause(): void {
    this.#paused = false;
    if (this.#stalled) {
      this.#stalled = false;
      this.#instance.stalled--;
    }
  }

  /** Activity: the deadline moves to `request_timeout_ms` from now. */
  #rearm(): void {
    this.deadline = deadlines.now + this.#timeoutMs;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#abortReason) controller.abort(this.#abortReason);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    const sink = this.#sink;
    if (sink.destroyed) {
      controller.abort(new Error('client closed'));
      return;
    }
    this.#rearm();
    if (statusCode < 200) {
      // An interim response (RFC 9110 §15.2): 103 Early Hints is passed on, the rest are
      // dropped; the final response follows on the same request. (An unsolicited
      // 100 Continue never gets here: undici closes the connection on it, and the client
      // gets 502, see README.)
      if (statusCode === 103) sink.earlyHints(headers);
      return;
    }
    if (statusCode > 599) {
      controller.abort(BAD_STATUS);
      return;
    }
    const contentType = headers['content-type'];
    // Throws on a header Node will not send (a malformed answer): undici then reports the
    // error and, as nothing went out yet, the client gets a 502.
    sink.writeHead(statusCode, downstreamHeaders(headers, statusCode));
    this.#status = statusCode;
    // Event streams must reach the client at once, before the first event is produced.
    if (typeof contentType === 'string' && contentType.startsWith('text/event-stream')) sink.flushHeaders();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#rearm();
    if (!this.#sink.write(chunk)) {
      controller.pause();
      this.#paused = true;
      this.#pausedAt = deadlines.now;
      this.deadline = this.#pausedAt + Math.min(STALLED_AFTER_MS, this.#sendTimeoutMs);
      this.#sink.onDrain(() => {
        if (!this.#paused) return;
        this.#unpause();
        if (!this.#finished) this.#rearm();
        controller.resume();
      });
    }
  }

  onResponseEnd(): void {
    this.#sink.end();
    this.#finish(COMPLETE);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.#sink.started) {
      // Headers are out: the client can only learn of the failure by the cut connection.
      this.#finish(err === TIMED_OUT ? CUT_OFF_TIMED_OUT : err === CLIENT_TOO_SLOW ? CUT_SLOW_CLIENT : CUT_OFF);
      this.#sink.cut();
      return;
    }
    this.#finish({ kind: 'error', error: toGatewayError(err), connectFailed: isConnectError(err) });
  }

  #finish(r: AttemptResult): void {
    if (this.#finished) return;
    this.#finished = true;
    deadlines.remove(this);
    if (this.#paused) this.#unpause();
    this.#instance.inFlight--;
    this.#done.attemptDone(r);
  }
}

function errCode(err: Error): string | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code) return code;
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined;
}

function isConnectError(err: Error): boolean {
  const code = errCode(err);
  return code !== undefined && CONNECT_ERRORS.has(code);
}

/** Map an upstream failure to the catalogue: our own errors (413, 504) pass, the rest are 502. */
export function toGatewayError(err: Error): GatewayError {
  if (err instanceof GatewayError) return err;
  const code = errCode(err);
  // undici closes the connection on a 100 Continue it did not ask for (it never sends
  // Expect upstream), as "bad response".
  if (code === 'UND_ERR_SOCKET' && err.message === 'bad response') {
    return new GatewayError('BadGateway', 'The model instance sent a 100 Continue nobody asked for; its connection was closed.');
  }
  return new GatewayError('BadGateway', `The model instance failed to answer (${code ?? 'error'}).`);
}
