import { createReadStream, createWriteStream, type ReadStream, unlink } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { deadlines, type Expiring } from '../coarse-timers.ts';
import { GatewayError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import type { BodyLimits } from '../snapshot/compile.ts';
import type { RequestBody } from './request-body.ts';
import { spoolDir } from './spool.ts';

// The rest of an oversized or stalled body is not read: the connection cannot be reused.
export const TOO_LARGE = new GatewayError('PayloadTooLarge', undefined, { connection: 'close' });
const STALLED = new GatewayError('RequestTimeout', 'The request body stalled past client_body_timeout_ms.', { connection: 'close' });
const SPOOL_FAILED = new GatewayError('InternalError', 'The request body could not be spooled (see the gateway log).', { connection: 'close' });

export type { SpooledBody } from './request-body.ts';

/** What {@link readBody} hands on: the body as read, or the error to answer. */
export type Body = RequestBody | GatewayError;

/**
 * Memory that bodies being read hold, process-wide (`request_buffering_memory_bytes`): a
 * crowd of clients that each send most of a 1 MiB body and stall cannot grow the gateway
 * past it; bodies that find it spent go to the spool instead.
 */
class MemoryBudget {
  used = 0;
  take(n: number, limit: number): boolean {
    if (this.used + n > limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}
export const bodyMemory = new MemoryBudget();

/**
 * A body on its way somewhere (upstream, or to the spool file): counts bytes against the
 * limit (413) and watches for silence (408), so a client that stops sending holds nothing
 * for longer than `client_body_timeout_ms`.
 */
class BodyGuard extends Transform implements Expiring {
  #left: number;
  readonly #idleMs: number;
  readonly #onStall: () => void;
  deadline: number;
  timerPrev: Expiring | undefined = undefined;
  timerNext: Expiring | undefined = undefined;

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
 * `client_body_timeout` are the anchors). No instance connection is taken while a client
 * is still uploading:
 *
 * - over `max_body_bytes` on Content-Length: 413 before anything is read;
 * - the `100 Continue` invitation is sent only now, once the request was accepted
 *   (routed, authenticated, within limits), so a refusal costs the client no upload;
 * - a body up to `request_buffering_bytes` is read whole into memory, within the
 *   process-wide `request_buffering_memory_bytes`;
 * - a larger body (or one the memory budget cannot take) is read whole into a temporary
 *   file first (`request_spooling`, on by default), then sent from it; with spooling off it
 *   streams as it arrives, guarded by the same limits;
 * - an upload silent for `client_body_timeout_ms` is 408.
 *
 * `done` is called exactly once; never once the client has gone.
 */
export function readBody(ex: Exchange, limits: BodyLimits, report: (err: unknown) => void, done: (body: Body) => void): void {
  const req = ex.req;
  const cl = req.headers['content-length'];
  const expected = cl === undefined ? -1 : Number(cl);
  if (expected > limits.maxBytes) return done(TOO_LARGE);
  if (expected === 0 || (expected < 0 && req.headers['transfer-encoding'] === undefined)) return done(null);
  if (ex.expectContinue) ex.res.writeContinue();
  if (expected <= limits.bufferBytes && bodyMemory.take(Math.max(expected, 0), limits.memoryBytes)) {
    return buffer(ex, req, expected, limits, report, done);
  }
  onward(ex, req, [], limits, report, done);
}

/** The request announces a body (the walk skips {@link readBody} otherwise: no callback, no timer). */
export function hasBody(req: IncomingMessage): boolean {
  const cl = req.headers['content-length'];
  return cl !== undefined ? cl !== '0' : req.headers['transfer-encoding'] !== undefined;
}

/**
 * Read up to `bufferBytes` into memory (the budget already holds `expected` bytes; a chunked
 * body takes from it as it grows). Past either, spool (or stream) what came and the rest.
 */
function buffer(ex: Exchange, req: IncomingMessage, expected: number, limits: BodyLimits, report: (err: unknown) => void, done: (body: Body) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let held = Math.max(expected, 0);
  let settled = false;
  const settle = (body: Body | undefined): void => {
    if (settled) return;
    settled = true;
    deadlines.remove(watch);
    req.off('data', onData);
    req.off('end', onEnd);
    bodyMemory.give(held);
    if (body !== undefined && !ex.destroyed) done(body);
  };
  const watch: Expiring = { deadline: deadlines.now + limits.idleMs, expired: () => settle(STALLED), timerPrev: undefined, timerNext: undefined };
  deadlines.add(watch);
  const onData = (c: Buffer): void => {
    watch.deadline = deadlines.now + limits.idleMs;
    size += c.length;
    chunks.push(c);
    if (size > limits.maxBytes) return settle(TOO_LARGE);
    if (expected < 0 && size > held) {
      // A chunked upload: grow the hold, or leave memory for the spool.
      const more = Math.max(size - held, 65_536);
      if (size <= limits.bufferBytes && bodyMemory.take(more, limits.memoryBytes)) {
        held += more;
        return;
      }
      req.pause();
      settle(undefined);
      onward(ex, req, chunks, limits, report, done);
    }
  };
  // One chunk is the body; with a Content-Length the chunks go on as they are (undici writes
  // each, no 1 MiB copy); a buffered chunked upload is joined so it gets a Content-Length.
  const onEnd = (): void => settle(chunks.length === 1 ? chunks[0]! : expected >= 0 ? chunks : Buffer.concat(chunks, size));
  req.on('data', onData);
  req.once('end', onEnd);
  // A client that leaves mid-upload ends the exchange (the response closes): nothing to send.
  req.once('close', () => {
    if (!req.complete) settle(null);
  });
}

/** Past the memory buffer: into the spool, or (spooling off) straight on, guarded. */
function onward(ex: Exchange, req: IncomingMessage, head: Buffer[], limits: BodyLimits, report: (err: unknown) => void, done: (body: Body) => void): void {
  if (limits.spoolDir !== undefined) return spool(ex, req, head, limits, limits.spoolDir, report, done);
  const guard = new BodyGuard(limits.maxBytes, limits.idleMs, () => {
    // Silent too long: 408 if the instance has not answered yet, else the stream is cut.
    guard.destroy(STALLED);
    ex.uploadStalled(STALLED);
  });
  for (const c of head) guard.write(c);
  req.pipe(guard);
  req.resume();
  done(guard);
}

/**
 * Read the whole body into a temporary file, then hand on a stream of it. The file is
 * created (mode 0600, never an existing one) in the process's private directory (`mkdtemp`,
 * 0700), where no other local user can place, swap or read anything; it is unlinked as soon
 * as it is open for reading back, and in any case when the exchange ends. Each stream owns
 * its own descriptor (a stream's destroy closes its descriptor, whatever `autoClose` says).
 */
function spool(ex: Exchange, req: IncomingMessage, head: Buffer[], limits: BodyLimits, root: string, report: (err: unknown) => void, done: (body: Body) => void): void {
  let file: string;
  try {
    file = join(spoolDir(root), `${ex.requestId}.body`);
  } catch (err) {
    report(err);
    return done(SPOOL_FAILED);
  }
  let reader: ReadStream | undefined;
  ex.after(() => {
    unlink(file, () => {});
    reader?.destroy();
  });
  let size = 0;
  let settled = false;
  const settle = (body: Body | undefined): void => {
    if (settled) return;
    settled = true;
    req.unpipe(guard);
    if (body !== undefined && !ex.destroyed) done(body);
  };
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  const guard = new BodyGuard(limits.maxBytes, limits.idleMs, () => {
    guard.destroy(STALLED);
  });
  guard.on('data', (c: Buffer) => { size += c.length; });
  guard.on('error', (err) => {
    out.destroy();
    settle(err instanceof GatewayError ? err : SPOOL_FAILED);
  });
  out.on('error', (err) => {
    report(err);
    guard.destroy();
    settle(SPOOL_FAILED);
  });
  out.on('finish', () => {
    if (settled || ex.destroyed) return settle(null);
    reader = createReadStream(file);
    reader.once('open', () => unlink(file, () => {}));
    settle({ stream: reader, length: size });
  });
  req.once('close', () => {
    if (!req.complete) settle(null);
  });
  guard.pipe(out);
  for (const c of head) guard.write(c);
  req.pipe(guard);
  req.resume();
}
