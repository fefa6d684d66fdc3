import type { IncomingHttpHeaders } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Sink } from '../upstream/sink.ts';
import type { CapturedAnswer } from './types.ts';

/** A header's value from a flat header list, lower-cased, without parameters. */
function headerOf(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.length === name.length && headers[i]!.toLowerCase() === name) {
      const v = headers[i + 1]!;
      const semi = v.indexOf(';');
      return (semi < 0 ? v : v.slice(0, semi)).trim().toLowerCase();
    }
  }
  return undefined;
}

/**
 * A copy of an answer, kept up to `cap` bytes: what the mirror compares. Past the cap the
 * copy is dropped (the answer is then not compared), so a huge or endless answer holds at
 * most `cap` bytes here.
 */
class Copy {
  readonly #cap: number;
  readonly #started = performance.now();
  status = 0;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  /** The answer passed the cap: it will not be compared (a capture can stop reading it). */
  overCap = false;
  #chunks: Buffer[] | undefined = [];
  #size = 0;
  #complete = false;
  #endedAt = 0;

  constructor(cap: number) {
    this.#cap = cap;
  }

  head(status: number, headers: readonly string[]): void {
    this.status = status;
    this.contentType = headerOf(headers, 'content-type');
    this.contentEncoding = headerOf(headers, 'content-encoding');
  }

  chunk(c: Buffer): void {
    if (!this.#chunks) return;
    this.#size += c.length;
    if (this.#size > this.#cap) {
      this.#chunks = undefined;
      this.overCap = true;
    } else {
      this.#chunks.push(c);
    }
  }

  end(complete: boolean): void {
    if (this.#endedAt) return;
    this.#complete = complete;
    this.#endedAt = performance.now();
  }

  answer(failure?: 'timeout' | 'error'): CapturedAnswer {
    const latencyMs = (this.#endedAt || performance.now()) - this.#started;
    const body = this.#complete && this.#chunks ? Buffer.concat(this.#chunks) : undefined;
    return { status: failure ? 0 : this.status, contentType: this.contentType, contentEncoding: this.contentEncoding, body, latencyMs, failure };
  }
}

/**
 * The live response, tee'd: everything goes to the client as before, and a capped copy is
 * kept for the comparison. Never pushes back on its own (the client's backpressure is the
 * only one), never delays a chunk.
 */
export class TeeSink implements Sink {
  readonly #client: Sink;
  readonly copy: Copy;

  constructor(client: Sink, cap: number) {
    this.#client = client;
    this.copy = new Copy(cap);
  }

  get destroyed(): boolean {
    return this.#client.destroyed;
  }

  get started(): boolean {
    return this.#client.started;
  }

  writeHead(status: number, headers: string[]): void {
    this.copy.head(status, headers);
    this.#client.writeHead(status, headers);
  }

  earlyHints(headers: IncomingHttpHeaders): void {
    this.#client.earlyHints(headers);
  }

  flushHeaders(): void {
    this.#client.flushHeaders();
  }

  write(chunk: Buffer): boolean {
    this.copy.chunk(chunk);
    return this.#client.write(chunk);
  }

  onDrain(fn: () => void): void {
    this.#client.onDrain(fn);
  }

  end(): void {
    this.copy.end(true);
    this.#client.end();
  }

  cut(): void {
    this.copy.end(false);
    this.#client.cut();
  }
}

/**
 * Where a shadow's (or a second live copy's) answer goes: nowhere but a capped copy. No
 * client, so no backpressure: the instance is read as fast as it sends, and what is past
 * the cap is dropped at once.
 */
export class CaptureSink implements Sink {
  destroyed = false;
  started = false;
  readonly copy: Copy;
  /** Called once when the answer passes the cap: nothing more of it is worth reading. */
  onOverCap: (() => void) | undefined;

  constructor(cap: number) {
    this.copy = new Copy(cap);
  }

  writeHead(status: number, headers: string[]): void {
    this.started = true;
    this.copy.head(status, headers);
  }

  earlyHints(): void {}
  flushHeaders(): void {}

  write(chunk: Buffer): boolean {
    if (this.copy.overCap) return true;
    this.copy.chunk(chunk);
    if (this.copy.overCap) this.onOverCap?.();
    return true;
  }

  onDrain(): void {}

  end(): void {
    this.copy.end(true);
  }

  cut(): void {
    this.copy.end(false);
  }
}

export type { Copy };
