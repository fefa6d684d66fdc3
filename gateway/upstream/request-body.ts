import type { Readable } from 'node:stream';

/** A body read whole into the spool: a stream of it, and its length (sent as Content-Length). */
export interface SpooledBody {
  readonly stream: Readable;
  readonly length: number;
}

/**
 * A request body as the walk hands it on once read: none, the whole body (one buffer or its
 * chunks), a stream of it, or a spooled copy. (Its own file: the exchange holds one, and
 * `body.ts`, which reads it, needs the exchange.)
 */
export type RequestBody = null | Buffer | readonly Buffer[] | Readable | SpooledBody;
