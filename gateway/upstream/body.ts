import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import type { BodyLimits } from '../snapshot/compile.ts';
import { deadlines, type Expiring } from '../coarse-timers.ts';

// The rest of an oversized or stalled body is not read: the connection cannot be reused.
export const TOO_LARGE = new GatewayError('PayloadTooLarge', undefined, { connection: 'close' });
const STALLED = new GatewayError('RequestTimeout', 'The request body stalled past client_body_timeout_ms.', { connection: 'close' });

/** What {@link readBody} hands on: no body, the whole body, a stream of it, or the error to answer. */
export type Body = null | Buffer | Transform | GatewayError;


/**
 * A streamed body on its way upstream: counts bytes against the limit (413) and watches
 * for silence (408), so a client that stops sending cannot hold an instance's connection
 * for longer than `client_body_timeout_ms`.
 */
class BodyGuard extends Transform implements Expiring {
  #left: number;
  readonly #idleMs: number;
  readonly #onStall: () => void;
  deadline: number;

  constructor(limit: number, idleMs: number, onStall: () => void) {
    super();
    this.#left = limit;
    this.#idleMs = idleMs;
    this.#onStall = onStall;
    this.deadline = deadlines.now + idleMs;
    deadlines.add(this);
  }

  expired(): void {
    this.#onStall();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.deadline = deadlines.now + this.#idleMs;
    this.#left -= chunk.length;
    if (this.#left < 0) cb(TOO_LARGE);
    else cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    deadlines.remove(this);
    cb();
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    deadlines.remove(this);
    cb(err);
  }
}

/**
 * The request body, from one place (NGINX's `proxy_request_buffering` and
 * `client_body_timeout` are the anchors):
 *
 * - over `max_body_bytes` on Content-Length: 413 before anything is read;
 * - the `100 Continue` invitation is sent only now, once the request was accepted
 *   (routed, authenticated, within limits), so a refusal costs the client no upload;
 * - a body up to `request_buffering_bytes` is read whole before an upstream connection is
 *   taken, so a slow or stalled uploader holds no instance connection; a stall past
 *   `client_body_timeout_ms` is 408;
 * - a larger body streams as it arrives, guarded by the same size limit and idle timeout.
 *
 * `done` is called exactly once; synchronously for a request without a body (no promise,
 * no timer on the common GET path). Nothing is called once the client has gone.
 */
export function readBody(ex: Exchange, limits: BodyLimits, done: (body: Body) => void): void {
  const req = ex.req;
  const cl = req.headers['content-length'];
  const expected = cl === undefined ? -1 : Number(cl);
  if (expected > limits.maxBytes) return done(TOO_LARGE);
  if (expected === 0 || (expected < 0 && req.headers['transfer-encoding'] === undefined)) return done(null);
  if (ex.expectContinue) ex.res.writeContinue();
  if (expected > limits.bufferBytes) return done(stream(ex, req, [], limits));
  buffer(ex, req, expected, limits, done);
}

/** The request announces a body (the walk skips {@link readBody} otherwise: no callback, no timer). */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined;
}

/** Read up to `bufferBytes` whole; past that (chunked uploads), stream what came and the rest. */
function buffer(ex: Exchange, req: IncomingMessage, expected: number, limits: BodyLimits, done: (body: Body) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let settled = false;
  const settle = (body: Body): void => {
    if (settled) return;
    settled = true;
    deadlines.remove(watch);
    req.off('data', onData);
    req.off('end', onEnd);
    if (!ex.destroyed) done(body);
  };
  const watch: Expiring = { deadline: deadlines.now + limits.idleMs, expired: () => settle(STALLED) };
  deadlines.add(watch);
  const onData = (c: Buffer): void => {
    watch.deadline = deadlines.now + limits.idleMs;
    size += c.length;
    chunks.push(c);
    if (size > limits.maxBytes) return settle(TOO_LARGE);
    if (expected < 0 && size > limits.bufferBytes) {
      // A chunked upload larger than the buffer: stream from here on.
      req.pause();
      settle(stream(ex, req, chunks, limits));
    }
  };
  const onEnd = (): void => settle(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
  req.on('data', onData);
  req.once('end', onEnd);
  // A client that leaves mid-upload ends the exchange (the response closes): nothing to send.
  req.once('close', () => {
    if (!req.complete) settle(null);
  });
}

function stream(ex: Exchange, req: IncomingMessage, head: Buffer[], limits: BodyLimits): Transform {
  const guard = new BodyGuard(limits.maxBytes, limits.idleMs, () => {
    // Silent too long: 408 if the instance has not answered yet, else the stream is cut.
    guard.destroy(STALLED);
    ex.uploadStalled(STALLED);
  });
  for (const c of head) guard.write(c);
  req.pipe(guard);
  req.resume();
  return guard;
}
