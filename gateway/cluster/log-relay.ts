import type { Readable } from 'node:stream';

/** A line longer than this without a newline is passed on in pieces (it is not a log line). */
const MAX_LINE = 1 << 20;

/**
 * Pass a worker's stdout on to the primary's, whole lines at a time. Workers write their
 * log in buffers of up to 8 KiB (gateway/logger.ts); several processes writing buffers
 * larger than PIPE_BUF (4 KiB) to one shared pipe may interleave mid-line, which breaks
 * every JSON-lines reader downstream. Through the primary, one writer writes whole lines.
 * The promise resolves once everything the worker wrote was passed on (its last lines come
 * as it exits, possibly after the primary heard of the exit).
 */
export function relayLines(from: Readable, write: (chunk: Buffer) => void): Promise<void> {
  let rest: Buffer | undefined;
  from.on('data', (chunk: Buffer) => {
    const buf = rest ? Buffer.concat([rest, chunk]) : chunk;
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) {
      if (buf.length < MAX_LINE) {
        rest = buf;
        return;
      }
      rest = undefined;
      write(buf);
      return;
    }
    write(end + 1 === buf.length ? buf : buf.subarray(0, end + 1));
    rest = end + 1 < buf.length ? Buffer.from(buf.subarray(end + 1)) : undefined;
  });
  return new Promise((resolve) => {
    from.once('close', () => {
      if (rest) write(Buffer.concat([rest, Buffer.from('\n')]));
      rest = undefined;
      resolve();
    });
  });
}
