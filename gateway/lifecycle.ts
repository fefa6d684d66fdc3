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
  /** A stop began: new requests get 503, `/readyz` answers 503. */
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
   * The drain: refuse new requests (503), let those in flight finish for up to `graceMs`,
   * then mark the rest as cut by the shutdown. The caller closes the connections after.
   */
  async drain(graceMs: number, stopAccepting: () => void, log: Logger): Promise<void> {
    this.draining = true;
    log.info({ in_flight: this.inFlight, grace_ms: graceMs }, 'draining');
    stopAccepting();
    if (!(await this.idle(graceMs))) log.warn({ in_flight: this.inFlight }, 'grace period over; closing remaining connections');
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
