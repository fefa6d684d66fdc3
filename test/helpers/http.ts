import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A response read to the end. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface CallOptions {
  /** Default: POST when there is a body, else GET. */
  readonly method?: string;
  readonly headers?: Record<string, string>;
  /** A string body is sent as `application/json` unless `headers` say otherwise. */
  readonly body?: string | Buffer;
  /** Source address, to act as a client on another network (127.0.0.x). */
  readonly localAddress?: string;
}

/**
 * The tests' one HTTP client: one request on a fresh connection (no agent pooling, so the
 * headers are exactly these and `localAddress` applies), read to the end.
 */
export function call(url: string, opts: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (typeof opts.body === 'string' && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
    headers['content-type'] = 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'),
      headers,
      localAddress: opts.localAddress,
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: <T>() => JSON.parse(body) as T });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** `Authorization: Bearer <token>`. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/** A raw HTTP/1.x response: status, headers as (lower-cased name, value) pairs, body bytes. */
export interface RawReply {
  readonly status: number;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: string;
}

/**
 * Write `chunks` on a raw socket exactly as given and read one response: up to its
 * Content-Length, or until the server closes. For tests that must control every header byte.
 */
export function rawExchange(port: number, chunks: readonly (string | Buffer)[]): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let done = false;
    const parse = (final: boolean): void => {
      if (done) return;
      const split = got.indexOf('\r\n\r\n');
      if (split < 0) {
        if (final) reject(new Error(`no complete response head: ${JSON.stringify(got.toString('latin1', 0, 200))}`));
        return;
      }
      const [statusLine = '', ...lines] = got.toString('latin1', 0, split).split('\r\n');
      const headers = lines.map((l) => {
        const c = l.indexOf(':');
        return [l.slice(0, c).trim().toLowerCase(), l.slice(c + 1).trim()] as const;
      });
      const length = headers.find(([n]) => n === 'content-length');
      const body = got.subarray(split + 4);
      if (!final && (!length || body.length < Number(length[1]))) return;
      done = true;
      sock.destroy();
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: body.toString('utf8') });
    };
    sock.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c]);
      parse(false);
    });
    sock.on('error', (err) => {
      if (!done) reject(err);
    });
    sock.on('close', () => parse(true));
    for (const c of chunks) sock.write(c);
  });
}

/** A raw reply as a {@link Reply} (headers by lower-cased name), for the shared assertions. */
export function replyOf(r: RawReply): Reply {
  const headers: IncomingHttpHeaders = {};
  for (const [n, v] of r.headers) headers[n] = v;
  return { status: r.status, headers, body: r.body, json: <T>() => JSON.parse(r.body) as T };
}

/** The shape of a gateway-made error body (SPEC §4). */
export interface ErrorBody {
  readonly error: {
    readonly code: string;
    readonly message: string;
    readonly request_id: string;
    /** Every field error of an invalid admin edit (`InvalidConfig` only). */
    readonly details?: readonly { readonly path: string; readonly message: string }[];
  };
}

/**
 * Assert `r` is a gateway-made error with this status and code: JSON body of SPEC §4,
 * a non-empty message, and a request_id equal to the `x-request-id` header.
 */
export function assertGatewayError(r: Pick<Reply, 'status' | 'headers' | 'body'>, status: number, code: string): ErrorBody {
  assert.equal(r.status, status, `status (body: ${r.body})`);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const body = JSON.parse(r.body) as ErrorBody;
  assert.deepEqual(Object.keys(body), ['error']);
  // `details` (every field error) belongs to InvalidConfig alone.
  assert.deepEqual(Object.keys(body.error).sort(), code === 'InvalidConfig' ? ['code', 'details', 'message', 'request_id'] : ['code', 'message', 'request_id']);
  assert.equal(body.error.code, code);
  assert.ok(body.error.message.length > 0, 'message is a sentence');
  assert.ok(body.error.request_id, 'request_id is set');
  assert.equal(r.headers['x-request-id'], body.error.request_id, 'x-request-id header equals the body request_id');
  return body;
}

/**
 * Poll until `check` returns true. The deadline only turns a hang into a failure with a
 * message; nothing asserts on how long the wait took.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, deadlineMs = 10_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

