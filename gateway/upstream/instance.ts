import { Pool } from 'undici';

/**
 * One model-server instance: its keep-alive connection pool and its live state. Keyed by
 * origin in {@link InstanceRegistry}, so a config reload that keeps an instance keeps its
 * pool, in-flight count and health (Caddy's `Host` vs `Upstream` split).
 */
export class Instance {
  readonly origin: string;
  readonly pool: Pool;
  /** Requests sent and not yet finished. Drives least-in-flight selection. */
  inFlight = 0;
  /** Readiness as last decided by probes; true when the deployment has no probe. */
  ready = true;
  /** Passive outlier detection puts an instance aside until this time (ms). */
  ejectedUntil = 0;
  constructor(origin: string) {
    this.origin = origin;
    this.pool = new Pool(origin, {
      // Keep-alive and enough sockets that the per-instance concurrency cap, not the pool, is
      // what queues requests. Timeouts are set per request from the deployment's settings.
      connections: 256,
      pipelining: 1,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    // A pool emits 'connectionError' for refused connects; the request's own handler reports it.
    this.pool.on('connectionError', () => {});
  }
}

/**
 * Instances by origin, shared by every config snapshot that names them. After a swap,
 * {@link retain} closes the pools no snapshot uses any more; `close()` lets requests in
 * flight on them finish first.
 */
export class InstanceRegistry {
  readonly #byOrigin = new Map<string, Instance>();

  /** The instance for an origin, created on first use. */
  acquire(origin: string): Instance {
    let inst = this.#byOrigin.get(origin);
    if (!inst) {
      inst = new Instance(origin);
      this.#byOrigin.set(origin, inst);
    }
    return inst;
  }

  /** Close and forget every instance whose origin is not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const [origin, inst] of this.#byOrigin) {
      if (keep.has(origin)) continue;
      this.#byOrigin.delete(origin);
      inst.pool.close().catch(() => {});
    }
  }

  /** Every live instance (for admin views and metrics). */
  all(): IterableIterator<Instance> {
    return this.#byOrigin.values();
  }

  /** Close every pool, waiting for requests in flight. */
  async close(): Promise<void> {
    const closing = [...this.#byOrigin.values()].map((i) => i.pool.close().catch(() => {}));
    this.#byOrigin.clear();
    await Promise.all(closing);
  }
}
