import type { ServerResponse } from 'node:http';

/**
 * The one catalogue of errors the gateway itself produces (SPEC §4). Every gateway-made
 * response goes through {@link sendError}, so status, code and body shape never drift.
 */
export const ERRORS = {
  Unauthorized: { status: 401, message: 'Missing or invalid credentials.' },
  Forbidden: { status: 403, message: 'The credentials are valid but do not grant access to this endpoint.' },
  NetworkNotAllowed: { status: 403, message: 'The client network is not allowed to call this endpoint.' },
  EndpointNotFound: { status: 404, message: 'No such endpoint.' },
  DeploymentNotFound: { status: 404, message: 'No such deployment on this endpoint.' },
  NoPositiveTraffic: { status: 404, message: 'The endpoint has no deployment with positive traffic weight.' },
  NotFound: { status: 404, message: 'Not found.' },
  MethodNotAllowed: { status: 405, message: 'Method not allowed.' },
  Conflict: { status: 409, message: 'The resource changed while the request was being handled; retry.' },
  PreconditionFailed: { status: 412, message: 'The resource changed since it was read (ETag mismatch).' },
  PayloadTooLarge: { status: 413, message: 'The request body exceeds the size limit.' },
  BadRequest: { status: 400, message: 'The request is malformed.' },
  InvalidConfig: { status: 400, message: 'The edit is not a valid config; nothing changed.' },
  RequestTimeout: { status: 408, message: 'The request was not received in time.' },
  ExpectationFailed: { status: 417, message: 'The Expect header is not supported (only 100-continue is).' },
  RequestHeaderFieldsTooLarge: { status: 431, message: 'The request header block is too large.' },
  TooManyRequests: { status: 429, message: 'Rate limit exceeded.' },
  TooManyPendingRequests: { status: 429, message: 'Too many pending requests for this deployment.' },
  BadGateway: { status: 502, message: 'The model instance failed to answer.' },
  NoReadyInstance: { status: 503, message: 'No ready instance for this deployment.' },
  CircuitOpen: { status: 503, message: 'The deployment is temporarily unavailable (circuit open).' },
  Overloaded: { status: 503, message: 'The gateway is overloaded; retry shortly.' },
  SharedStateUnavailable: { status: 503, message: 'The shared rate-limit state is unavailable and this endpoint refuses requests until it returns (state.on_redis_error: closed).' },
  LiveStoreUnavailable: { status: 503, message: 'The live config store cannot be written; nothing changed.' },
  Draining: { status: 503, message: 'The gateway is shutting down.' },
  GatewayTimeout: { status: 504, message: 'The model instance did not answer within request_timeout_ms.' },
  InternalError: { status: 500, message: 'Internal gateway error.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** A gateway-made error: a catalogue code plus optional detail and extra response headers. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Every field error of an invalid edit (`InvalidConfig`), in the body's `details`. */
  readonly details: readonly { readonly path: string; readonly message: string }[] | undefined;
  constructor(code: ErrorCode, message?: string, headers?: Record<string, string>, details?: readonly { path: string; message: string }[]) {
    super(message ?? ERRORS[code].message);
    this.code = code;
    this.status = ERRORS[code].status;
    this.headers = headers;
    this.details = details;
  }
}

/** The JSON error body of SPEC §4. */
export function errorBody(code: string, message: string, requestId: string, details?: readonly unknown[]): string {
  return JSON.stringify({ error: { code, message, request_id: requestId, ...(details ? { details } : {}) } });
}

/**
 * Write a gateway error to a response that has not started yet. When headers are already
 * out (a stream failed midway) the only honest signal left is to cut the connection.
 */
export function sendError(res: ServerResponse, err: GatewayError, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = errorBody(err.code, err.message, requestId, err.details);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-request-id': requestId,
  };
  if (err.status === 401 && !err.headers?.['www-authenticate']) headers['www-authenticate'] = 'Bearer realm="switchyard"';
  if ((err.status === 429 || err.status === 503) && !err.headers?.['retry-after']) headers['retry-after'] = '1';
  if (err.headers) Object.assign(headers, err.headers);
  res.writeHead(err.status, headers);
  res.end(body);
}
