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
