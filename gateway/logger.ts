import cluster from 'node:cluster';
import { writeSync } from 'node:fs';
import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * The log destination of this process. A single gateway owns its stdout: lines are
 * buffered up to 8 KiB and written synchronously, flushed at least once a second and at
 * exit. An async destination looked cheaper but wrote after every completed write (one
 * libuv round trip per few lines): ~4 µs of CPU per request under load. A cluster worker
 * shares stdout with its siblings and the primary: {@link SharedLogDestination}.
 */
export function logDestination(): pino.DestinationStream {
  if (cluster.isWorker) return new SharedLogDestination();
  const dest = pino.destination({ sync: true, minLength: 8192, periodicFlush: 1000 });
  process.once('exit', () => {
    try {
      dest.flushSync();
    } catch {
      // stdout already closed: nothing left to save.
    }
  });
  return dest;
}

/** POSIX's PIPE_BUF on Linux: a write to a pipe of at most this many bytes lands whole, never mixed with another process's. */
export const PIPE_BUF = 4096;
/** How long a line may wait in the buffer. */
const FLUSH_MS = 1000;
/** EAGAIN (a non-blocking stdout whose reader lags): wait this long, then write again. */
const AGAIN_MS = 1;

/**
 * A log destination for processes that write to one stdout (`serve --workers N`: the
 * primary and every worker inherit it), written to directly: each write(2) is whole lines
 * and at most {@link PIPE_BUF} bytes, which keeps lines from two processes apart with no
 * process in between. The kernel writes such a write whole: to a pipe (POSIX's PIPE_BUF
 * guarantee, also when the pipe is full and the writer waits, or gets EAGAIN and writes it
 * again), a regular file (Linux: one write at a time on an open file that processes share,
 * O_APPEND or not), a terminal (the tty's write lock), a Unix stream socket such as
 * journald's (a write this small is one message). pino's own destination writes 8 KiB and
 * more at once, which two workers sharing a pipe do split mid-line (the workers test shows
 * it). A single line longer than PIPE_BUF is written on its own, and to a pipe whose reader
 * lags it may then be split around another process's lines.
 *
 * Measured against what it replaced, workers' stdout piped to the primary which passed whole
 * lines on: that cost the primary ~11 µs of CPU per access line under load (~19 µs with
 * cold code), taken from the cores the workers serve on. These writes of ~4 KiB cost about
 * half of pino.destination's CPU per line (no re-encoding of each written buffer). Lines
 * wait in the buffer at most a second, and are flushed at exit. Once nobody reads stdout
 * (EPIPE) lines are dropped: pino.destination's flushSync retries such a write every 100 ms
 * for ever, which kept workers whose primary was killed from exiting, still holding the
 * listening sockets they share.
 */
export class SharedLogDestination implements pino.DestinationStream {
  readonly #fd: number;
  readonly #maxWrite: number;
  #buf = '';
  #bytes = 0;
  /** The reader went away (EPIPE) or the descriptor is gone: lines are dropped from then on. */
  #closed = false;

  constructor(fd = 1, maxWrite = PIPE_BUF) {
    this.#fd = fd;
    this.#maxWrite = maxWrite;
    setInterval(() => this.flushSync(), FLUSH_MS).unref();
    process.once('exit', () => this.flushSync());
  }

  /** pino writes one whole line (ending in `\n`) a call. */
  write(line: string): void {
    if (this.#closed) return;
    const n = Buffer.byteLength(line);
    if (this.#bytes + n > this.#maxWrite) this.flushSync();
    if (n > this.#maxWrite) {
      this.#writeAll(line, n);
      return;
    }
    this.#buf += line;
    this.#bytes += n;
  }

  flushSync(): void {
    if (this.#bytes === 0) return;
    const [s, n] = [this.#buf, this.#bytes];
    this.#buf = '';
    this.#bytes = 0;
    this.#writeAll(s, n);
  }

  /** pino's `logger.flush(cb)`. */
  flush(cb?: (err?: Error) => void): void {
    this.flushSync();
    cb?.();
  }

  /** Write `s` (`bytes` long in UTF-8) to the end. */
  #writeAll(s: string, bytes: number): void {
    if (this.#closed) return;
    let rest: string | Buffer = s;
    for (;;) {
      let written: number;
      try {
        written = typeof rest === 'string' ? writeSync(this.#fd, rest) : writeSync(this.#fd, rest);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Nothing was written (at most PIPE_BUF to a pipe is all or nothing): the same bytes again.
        if (code === 'EAGAIN') {
          Atomics.wait(SLEEP, 0, 0, AGAIN_MS);
          continue;
        }
        if (code === 'EINTR') continue;
        // EPIPE, EBADF...: nobody reads this log any more; the gateway serves on.
        this.#closed = true;
        return;
      }
      if (written >= (typeof rest === 'string' ? bytes : rest.length)) return;
      // A short write: only a line over PIPE_BUF, or a signal. The rest goes next.
      rest = (typeof rest === 'string' ? Buffer.from(rest) : rest).subarray(written);
    }
  }
}

const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/**
 * The general logger (config, lifecycle, errors). Authorization headers and anything
 * named like a secret are redacted as a second line of defence; the first is that no
 * code path logs a key or token.
 */
export function createLogger(level: string, destination: pino.DestinationStream = logDestination()): Logger {
  return pino({
    level,
    base: { service: 'switchyard' },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', '*.keys', 'keys', 'key', 'token', '*.token', '*.primary', '*.secondary'],
      censor: '[redacted]',
    },
  }, destination);
}

/**
 * The access logger: one line per request with a fixed set of fields built by the
 * gateway (none of them a secret), so it skips redaction, which cost ~3% of the
 * gateway's CPU at full load.
 */
export function createAccessLogger(destination: pino.DestinationStream): Logger {
  return pino({ level: 'info', base: { service: 'switchyard' } }, destination);
}
