/**
 * A stand-in model server for the swap test, in the test's own process so the test sees
 * exactly what it receives: `POST /score` answers `{"instance":…}` (with `x-instance`) after
 * an optional delay; `GET /ready` is the readiness path (200, or 503 while loading or
 * stopping). It can stop the Kubernetes way (readiness 503 first, wait until the gateway
 * has seen it, then close once in-flight requests finished) or die at once (every socket
 * reset, the port closed: what a killed process looks like to the gateway).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ModelServerOptions {
  /** Milliseconds each /score waits before answering (so requests are in flight). */
  readonly delayMs?: number;
  /** Cold start: /ready and /score answer 503 for this long after start (model loading). */
  readonly coldStartMs?: number;
}

/** Request header carrying the load generator's sequence number (passed through by the gateway). */
export const SEQ_HEADER = 'x-seq';

export class ModelServer {
  readonly name: string;
  readonly deployment: string;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #delayMs: number;
  #url = '';
  /** Loaded (cold start over). */
  #loaded: boolean;
  /** Answers its readiness path with 200 (once loaded). */
  #ready = true;
  #killed = false;
  /** /score requests received and not answered yet, by sequence number. */
  readonly inFlight = new Map<string, number>();
  /** Sequence numbers of every /score received, in order. */
  readonly received: string[] = [];
  /** /score answered 200, and answered 503 (not loaded yet). */
  served = 0;
  refusedCold = 0;
  probes = 0;
  /** Date.now() of the first readiness answer 200, and of the first /score received. */
  firstReadyProbeAt: number | undefined;
  firstScoreAt: number | undefined;
  /** Date.now() when the readiness path started answering 503 for a stop. */
  unreadySince: number | undefined;
  /** /score requests received after `markSeen()` (the gateway knew it was unready by then). */
  receivedAfterSeen = 0;
  #seenAt: number | undefined;

  private constructor(name: string, deployment: string, opts: ModelServerOptions) {
    this.name = name;
    this.deployment = deployment;
    this.#delayMs = opts.delayMs ?? 0;
    this.#loaded = !(opts.coldStartMs && opts.coldStartMs > 0);
    if (!this.#loaded) setTimeout(() => { this.#loaded = true; }, opts.coldStartMs).unref();
    this.#server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.#handle(req, res));
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.add(s);
      s.once('close', () => this.#sockets.delete(s));
    });
  }

  static async start(name: string, deployment: string, opts: ModelServerOptions = {}): Promise<ModelServer> {
    const m = new ModelServer(name, deployment, opts);
    await new Promise<void>((resolve, reject) => {
      m.#server.once('error', reject);
      m.#server.listen(0, '127.0.0.1', () => resolve());
    });
    m.#url = `http://127.0.0.1:${(m.#server.address() as AddressInfo).port}`;
    return m;
  }

  get url(): string {
    return this.#url;
  }

  get killed(): boolean {
    return this.#killed;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.url === '/ready') {
      this.probes++;
      const ok = this.#loaded && this.#ready;
      if (ok) this.firstReadyProbeAt ??= Date.now();
      res.writeHead(ok ? 200 : 503, { 'content-length': '0' }).end();
      return;
    }
    const seq = String(req.headers[SEQ_HEADER] ?? '');
    const now = Date.now();
    this.firstScoreAt ??= now;
    if (this.#seenAt !== undefined) this.receivedAfterSeen++;
    this.inFlight.set(seq, now);
    this.received.push(seq);
    req.resume();
    req.once('end', () => {
      const answer = (): void => {
        if (this.#killed || res.destroyed) return;
        this.inFlight.delete(seq);
        if (!this.#loaded) {
          this.refusedCold++;
          const cold = '{"error":"model is loading"}';
          res.writeHead(503, { 'content-type': 'application/json', 'content-length': String(cold.length) }).end(cold);
          return;
        }
        this.served++;
        const body = `{"instance":"${this.name}","deployment":"${this.deployment}"}`;
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-instance': this.name }).end(body);
      };
      if (this.#delayMs > 0) setTimeout(answer, this.#delayMs);
      else answer();
    });
  }

  /** Readiness answers as given (a Kubernetes readiness probe's view). */
  setReady(ready: boolean): void {
    this.#ready = ready;
  }

  /** The gateway has marked this instance unready: count any /score that still arrives. */
  markSeen(): void {
    this.#seenAt = Date.now();
  }

  /**
   * The graceful stop of a server behind readiness probes: answer the readiness path 503,
   * wait until the gateway has seen it (`gatewaySawIt`: its metric or admin view, bounded
   * by probe period × failure_threshold), then stop accepting, let requests in flight
   * finish and close the connections. Returns how long each step took.
   */
  async gracefulStop(gatewaySawIt: () => Promise<void>): Promise<{ unreadyToSeenMs: number; drainMs: number; inFlightAtClose: number }> {
    this.#ready = false;
    this.unreadySince = Date.now();
    await gatewaySawIt();
    this.markSeen();
    const seen = Date.now();
    const inFlightAtClose = this.inFlight.size;
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    this.#server.closeIdleConnections();
    for (let i = 0; i < 500 && this.inFlight.size > 0; i++) await sleep(10);
    this.#server.closeAllConnections();
    await closed;
    return { unreadyToSeenMs: seen - this.unreadySince, drainMs: Date.now() - seen, inFlightAtClose };
  }

  /**
   * Die at once, as a killed process does: the port closes (new connections are refused)
   * and every open connection is reset, answered or not. Returns the sequence numbers of
   * the /score requests it had received and not answered: the requests in flight on it.
   */
  hardKill(): { at: number; inFlight: string[] } {
    const at = Date.now();
    const inFlight = [...this.inFlight.keys()];
    this.#killed = true;
    this.#server.close();
    for (const s of this.#sockets) s.resetAndDestroy();
    this.inFlight.clear();
    return { at, inFlight };
  }

  /** Close (end of a run). */
  async close(): Promise<void> {
    if (!this.#server.listening) {
      this.#server.closeAllConnections();
      return;
    }
    const closed = new Promise<void>((r) => this.#server.close(() => r()));
    this.#server.closeAllConnections();
    await closed;
  }
}
