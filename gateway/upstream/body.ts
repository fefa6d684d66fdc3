import type { IncomingMessage } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { GatewayError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';

// The rest of an oversized body is not read: the connection cannot be reused.
export const TOO_LARGE = new GatewayError('PayloadTooLarge', undefined, { connection: 'close' });

/** Counts streamed (chunked) request bytes and fails the upload past the limit. */
class BodyLimit extends Transform {
  #left: number;
  constructor(limit: number) {
    super();
    this.#left = limit;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#left -= chunk.length;
    if (this.#left < 0) cb(TOO_LARGE);
    else cb(null, chunk);
  }
}

/**
 * The request body, from one place: the size limit (413 up front on Content-Length,
 * counted on chunked uploads), and the `100 Continue` invitation, sent only now that the
 * request was accepted (routed, authenticated, within limits) so a refusal costs the
 * client no upload (RFC 9110 §10.1.1). Returns null for a request without a body.
 */
export function requestBody(ex: Exchange): IncomingMessage | BodyLimit | null | GatewayError {
  const req = ex.req;
  const max = ex.snapshot.maxBodyBytes;
  const cl = req.headers['content-length'];
  let body: IncomingMessage | BodyLimit | null = null;
  if (cl !== undefined) {
    if (Number(cl) > max) return TOO_LARGE;
    if (cl !== '0') body = req;
  } else if (req.headers['transfer-encoding'] !== undefined) {
    body = req.pipe(new BodyLimit(max));
  }
  if (ex.expectContinue && body) ex.res.writeContinue();
  return body;
}
