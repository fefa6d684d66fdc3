import { randomUUID } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { errorBody, ERRORS, GatewayError, sendError, type ErrorCode } from './errors.ts';
import { markClientFault } from './exchange.ts';
import { normalize } from '../policies/shared/client-ip.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

/**
 * Why Node rejected a connection's request before the gateway saw it: the closed label
 * set of `switchyard_client_errors_total{reason}`.
 */
export const CLIENT_ERROR_REASONS = [
  'bad_request', // malformed request line or header (llhttp HPE_*)
  'ambiguous_framing', // Content-Length with Transfer-Encoding, two Content-Lengths, a bad Transfer-Encoding: smuggling attempts
  'bad_body', // a malformed chunked upload
  'header_too_large', // header block over Node's max header size
  'chunk_extensions_too_large',
  'header_timeout', // headers not complete in time (Node's headersTimeout / requestTimeout)
  'body_timeout', // request not complete in time (Node's requestTimeout)
  'bad_expect', // an Expect other than 100-continue
  'incomplete_request', // the client closed halfway through a request
  'connection_error', // the socket failed (reset, broken pipe)
  'connect_method', // CONNECT: the gateway is not a forward proxy (405)
] as const;
export type ClientErrorReason = (typeof CLIENT_ERROR_REASONS)[number];

const FRAMING = new Set(['HPE_INVALID_TRANSFER_ENCODING', 'HPE_UNEXPECTED_CONTENT_LENGTH', 'HPE_INVALID_CONTENT_LENGTH']);
const BODY = new Set(['HPE_INVALID_CHUNK_SIZE']);

/** How a client error is answered: a reason to count, and a catalogue code (none: nothing to send). */
export interface Classified {
  readonly reason: ClientErrorReason;
  readonly code: ErrorCode | undefined;
}

/**
 * Map Node's `clientError` to a reason and a response. `inFlight`: a request on this
 * connection was already handed to the gateway (the error hit its body, or a pipelined one).
 */
export function classify(code: string | undefined, inFlight: boolean): Classified {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { reason: inFlight ? 'body_timeout' : 'header_timeout', code: 'RequestTimeout' };
    case 'HPE_HEADER_OVERFLOW':
      return { reason: 'header_too_large', code: 'RequestHeaderFieldsTooLarge' };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { reason: 'chunk_extensions_too_large', code: 'PayloadTooLarge' };
    case 'HPE_INVALID_EOF_STATE':
      return { reason: 'incomplete_request', code: 'BadRequest' };
  }
  if (code && FRAMING.has(code)) return { reason: 'ambiguous_framing', code: 'BadRequest' };
  if (code && BODY.has(code)) return { reason: 'bad_body', code: 'BadRequest' };
  if (code?.startsWith('HPE_')) return { reason: inFlight ? 'bad_body' : 'bad_request', code: 'BadRequest' };
  // ECONNRESET, EPIPE, …: the socket itself failed; there is no one to answer.
  return { reason: 'connection_error', code: undefined };
}

/**
 * At most one line per key per `intervalMs`; the next line allowed says how many were
 * held back meanwhile. A flood of bad requests costs a counter increment, not a log line.
 */
export class LogRateLimit {
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();
  constructor(intervalMs: number, now: () => number) {
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /** `undefined`: stay quiet; a number: log now, and this many were suppressed since the last line. */
  take(key: string): number | undefined {
    const now = this.#now();
    const s = this.#last.get(key);
    if (s && now - s.at < this.#intervalMs) {
      s.suppressed++;
      return undefined;
    }
    const suppressed = s?.suppressed ?? 0;
    this.#last.set(key, { at: now, suppressed: 0 });
    return suppressed;
  }
}

export interface ClientErrorDeps {
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly now: () => number;
  /** One log line per reason per this many milliseconds (default 10 s). */
  readonly logIntervalMs?: number;
}

/** After the answer, how long a connection may keep sending before it is cut (NGINX's lingering close). */
const LINGER_MS = 1000;

/** What a 405 to CONNECT lists in `Allow` (RFC 9110 §15.5.6): the methods a listener serves. */
const INVOCATION_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS';
const ADMIN_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';

/**
 * Write a SPEC §4 error as the last response on `socket` (`extra`: more header lines, each
 * ending in CRLF) and close it once the client has had the chance to read it.
 */
function answerAndClose(socket: Socket, code: ErrorCode, message: string, requestId: string, extra: string): void {
  const status = ERRORS[code].status;
  const body = errorBody(code, message, requestId);
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`
    + 'Content-Type: application/json\r\n'
    + `Content-Length: ${Buffer.byteLength(body)}\r\n`
    + `x-request-id: ${requestId}\r\n`
    + extra
    + 'Connection: close\r\n\r\n'
    + body);
  // The client may still be sending (a huge header block): closing on unread bytes makes
  // the kernel send a reset that can destroy the answer before it is read. Let it finish.
  const linger = setTimeout(() => socket.destroy(), LINGER_MS);
  linger.unref();
  socket.once('end', () => socket.destroy());
  socket.once('close', () => clearTimeout(linger));
}

/** Connections already answered: llhttp repeats the error for every later chunk of data. */
const answered = new WeakSet<Socket>();

/** A socket as Node's http server holds it: `_httpMessage` is the response in progress, if any. */
interface HttpSocket extends Socket {
  _httpMessage?: ServerResponse | null;
}

/**
 * The rejections Node makes itself — parse errors (smuggling attempts, malformed requests),
 * oversized or slow headers, an unsupported `Expect` — answered with the SPEC §4 JSON body
 * and an `x-request-id` where the connection can still carry it, counted in
 * `switchyard_client_errors_total{reason}` and logged at most once per reason per interval.
 */
export class ClientErrors {
  #deps: ClientErrorDeps | undefined;
  #limit: LogRateLimit | undefined;

  constructor(deps?: ClientErrorDeps) {
    if (deps) this.reportTo(deps);
  }

  /** Where to count and log (before that, rejections are still answered properly). */
  reportTo(deps: ClientErrorDeps): void {
    this.#deps = deps;
    this.#limit = new LogRateLimit(deps.logIntervalMs ?? 10_000, deps.now);
    for (const r of CLIENT_ERROR_REASONS) deps.metrics.clientErrors.inc({ reason: r }, 0);
  }

  /** Handle `clientError`, `checkExpectation` and `connect` on `server` (a listener of kind `listener`). */
  attach(server: Server, listener: string): void {
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket as HttpSocket, listener));
    server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.onExpectation(req, res, listener));
    // Without a listener Node closes a CONNECT's connection without a word.
    server.on('connect', (req: IncomingMessage, socket: Socket) => this.onConnect(req, socket, listener));
  }

  onClientError(err: NodeJS.ErrnoException, socket: HttpSocket, listener: string): void {
    if (answered.has(socket)) return;
    answered.add(socket);
    const inFlight = socket._httpMessage ?? undefined;
    const { reason, code } = classify(err.code, inFlight !== undefined);
    // A request in flight already has an id (once the exchange has set its header): keep it.
    const requestId = String(inFlight?.getHeader('x-request-id') ?? randomUUID());
    // Node's own rule: answer only if no response on this connection has begun, or the
    // bytes would corrupt one the client is already reading.
    // A client that closed halfway through its request is gone: nobody would read an answer.
    const gone = reason === 'connection_error' || reason === 'incomplete_request';
    const canAnswer = code !== undefined && !gone && socket.writable && !inFlight?.headersSent;
    // The exchange in flight ends as the client's fault, not the instance's: 400 sent; 499
    // for a client that is gone, whatever status line had already gone out (README, as
    // NGINX's convention: the client did not get that response); else the status sent.
    if (inFlight) {
      markClientFault(inFlight, {
        termination: gone ? 'client_aborted' : 'client_bad_request',
        status: canAnswer ? ERRORS[code].status : !gone && inFlight.headersSent ? inFlight.statusCode : 499,
      });
    }
    this.#record(reason, {
      listener, request_id: canAnswer ? requestId : undefined, client_ip: normalize(socket.remoteAddress ?? ''),
      code: err.code, status: canAnswer ? ERRORS[code].status : undefined,
    });
    if (!canAnswer) {
      socket.destroy();
      return;
    }
    answerAndClose(socket, code, ERRORS[code].message, requestId, '');
  }

  /**
   * `CONNECT host:port`: a request for a tunnel, which a gateway in front of models does
   * not make. Node hands over the bare socket (no response object): answer 405 with the
   * JSON body on it, close, count and log like the parser's rejections.
   */
  onConnect(_req: IncomingMessage, socket: Socket, listener: string): void {
    const requestId = randomUUID();
    this.#record('connect_method', {
      listener, request_id: requestId, client_ip: normalize(socket.remoteAddress ?? ''), status: 405,
    });
    // Anything the client sends after the request head is read and dropped until it closes.
    socket.on('error', () => socket.destroy());
    socket.resume();
    answerAndClose(socket, 'MethodNotAllowed', 'CONNECT is not supported: this gateway is not a forward proxy.', requestId,
      `Allow: ${listener === 'admin' ? ADMIN_METHODS : INVOCATION_METHODS}\r\n`);
  }

  onExpectation(req: IncomingMessage, res: ServerResponse, listener: string): void {
    const requestId = randomUUID();
    this.#record('bad_expect', { listener, request_id: requestId, client_ip: normalize(req.socket.remoteAddress ?? ''), status: 417 });
    // The body was not invited: it must not be read as the next request.
    res.setHeader('connection', 'close');
    sendError(res, new GatewayError('ExpectationFailed'), requestId);
  }

  #record(reason: ClientErrorReason, fields: Record<string, unknown>): void {
    const d = this.#deps;
    if (!d) return;
    d.metrics.clientErrors.inc({ reason });
    const suppressed = this.#limit?.take(reason);
    if (suppressed === undefined) return;
    const line = { reason, ...fields, suppressed_since_last: suppressed };
    if (reason === 'connection_error') d.log.info(line, 'client connection error');
    else d.log.warn(line, 'client request rejected');
  }
}
