import type { IncomingHttpHeaders } from 'node:http';

/**
 * Where an attempt writes the instance's answer: the client's response (the `Exchange`),
 * the client plus a capped copy (mirror comparison), or nowhere (a shadow request has no
 * client). The same undici handler serves all of them.
 */
export interface Sink {
  /** The receiver is gone (client disconnected): stop the upstream request. */
  readonly destroyed: boolean;
  /** The status line went out: a failure can now only cut the stream. */
  readonly started: boolean;
  /** Status and headers as a flat `[name, value, …]` list (hop-by-hop already removed); the sink may add its own. */
  writeHead(status: number, headers: string[]): void;
  /** A 103 Early Hints from the instance (its `link` headers are what matters). */
  earlyHints(headers: IncomingHttpHeaders): void;
  /** Send the head now (event streams: before the first event exists). */
  flushHeaders(): void;
  /** False: stop reading the instance until {@link onDrain}. */
  write(chunk: Buffer): boolean;
  onDrain(fn: () => void): void;
  end(): void;
  /** The instance failed after the head went out. */
  cut(): void;
}

/** A sink that keeps nothing and never pushes back (shadow traffic, probes). */
export class DiscardSink implements Sink {
  destroyed = false;
  started = false;
  status = 0;
  writeHead(status: number): void {
    this.started = true;
    this.status = status;
  }
  flushHeaders(): void {}
  earlyHints(): void {}
  write(): boolean {
    return true;
  }
  onDrain(): void {}
  end(): void {}
  cut(): void {}
}
