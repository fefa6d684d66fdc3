import type { Logger } from './logger.ts';

/**
 * The process's request lifecycle: requests in flight, readiness and the drain. The
 * listeners count requests in and out; a drain waits for the count to reach zero, for at
 * most the grace period.
 */
export class Lifecycle {
  #inFlight = 0;
  #idle: (() => void) | undefined;
  /** Listeners are up and the config is loaded (`/readyz`). */
  ready = false;
  /** A stop began: responses close their connections, `/readyz` answers 503. */
  draining = false;
  /** The drain is over: connections still open are closed now (their exchanges end as `shutdown`). */
  closing = false;

  get inFlight(): number {
    return this.#inFlight;
  }

  enter(): void {
    this.#inFlight++;
  }

  leave(): void {
    if (--this.#inFlight === 0) this.#idle?.();
  }

  /**
   * The drain: stop accepting, let requests in flight (and those still arriving on open
   * connections, each closing its connection) finish for up to `graceMs`, until no request
   * is in flight and no connection is open; then mark the rest as cut by the shutdown. The
   * caller closes the connections after.
   */
  async drain(graceMs: number, stopAccepting: () => void, openConnections: () => number, log: Logger): Promise<void> {
    this.draining = true;
    log.info({ in_flight: this.inFlight, grace_ms: graceMs }, 'draining');
    stopAccepting();
    const until = Date.now() + graceMs;
    for (;;) {
      const left = until - Date.now();
      if (!(await this.idle(Math.max(0, left)))) break;
      if (openConnections() === 0 || left <= 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    if (this.inFlight > 0 || openConnections() > 0) log.warn({ in_flight: this.inFlight, connections: openConnections() }, 'grace period over; closing remaining connections');
    this.closing = true;
  }

  /** Resolve once no request is in flight, or after `graceMs`; true when all finished. */
  async idle(graceMs: number): Promise<boolean> {
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#idle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#idle = undefined;
    }
    return this.#inFlight === 0;
  }
}
