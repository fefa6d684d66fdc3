import { Pool } from 'undici';

/** Connections per instance: enough that the concurrency cap, not the pool, queues requests. */
const POOL_CONNECTIONS = 256;
import { HealthRegistry, type InstanceHealth } from '../health/health-registry.ts';

/**
 * One model-server instance: its keep-alive connection pool and its live state. Keyed by
 * origin in {@link InstanceRegistry}, so a config reload that keeps an instance keeps its
 * pool, in-flight count and health (Caddy's `Host` vs `Upstream` split). Two deployments
 * (or endpoints) naming the same origin share this one instance: it is one server, so its
 * connections, in-flight count and health are one too (compile warns about it).
 */
export class Instance {
  readonly origin: string;
  readonly pool: Pool;
  /** Requests sent and not yet finished. Drives least-in-flight selection. */
  inFlight = 0;
  /** Responses whose client has read nothing for a second (each holds a connection). */
  stalled = 0;
  /** How many of those may hold a connection at once: half the pool. */
  readonly maxStalled = POOL_CONNECTIONS / 2;
  /** Readiness and ejection, kept by origin in the {@link HealthRegistry}. */
  health: InstanceHealth;

  /** Ready and not ejected at `now`: may be sent traffic. */
  takesTraffic(now: number): boolean {
    return this.health.takesTraffic(now);
  }

  constructor(origin: string, health: InstanceHealth) {
    this.origin = origin;
    this.health = health;
    this.pool = new Pool(origin, {
      // Keep-alive and enough sockets that the per-instance concurrency cap, not the pool, is
      // what queues requests. Timeouts are set per request from the deployment's settings.
      connections: POOL_CONNECTIONS,
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
 * Instances by origin, shared by every config snapshot that names them, so a reload that
 * keeps an instance keeps its pool and in-flight count. After a swap, {@link retain}
 * retires the instances no snapshot names; their pools close after a grace period (and a
 * config that names them again within it gets the same instance back).
 */
export class InstanceRegistry {
  readonly #byOrigin = new Map<string, Instance>();
  /** Instances no snapshot names any more, closing after a grace period. */
  readonly #retired = new Map<string, { inst: Instance; timer: NodeJS.Timeout }>();
  readonly #graceMs: number;
  /** Readiness and ejection by origin; an instance revived from retirement picks its entry up again. */
  readonly health: HealthRegistry;

  /**
   * @param graceMs how long a dropped instance's pool stays open: a request that read the
   * previous snapshot may still be on its way to it (an async policy such as a token
   * signature check sits between reading the snapshot and dispatching).
   */
  constructor(graceMs = 30_000, health = new HealthRegistry()) {
    this.#graceMs = graceMs;
    this.health = health;
  }

  /** The instance for an origin, created on first use (or revived if recently dropped). */
  acquire(origin: string): Instance {
    let inst = this.#byOrigin.get(origin);
    if (!inst) {
      const retired = this.#retired.get(origin);
      if (retired) {
        clearTimeout(retired.timer);
        this.#retired.delete(origin);
      }
      inst = retired?.inst ?? new Instance(origin, this.health.get(origin));
      inst.health = this.health.get(origin);
      this.#byOrigin.set(origin, inst);
    }
    return inst;
  }

  /** Retire every instance whose origin is not in `keep`: its pool closes after the grace period. */
  retain(keep: ReadonlySet<string>): void {
    this.health.retain(keep);
    for (const [origin, inst] of this.#byOrigin) {
      if (keep.has(origin)) continue;
      this.#byOrigin.delete(origin);
      const timer = setTimeout(() => {
        this.#retired.delete(origin);
        // close() lets requests already on the pool finish.
        inst.pool.close().catch(() => {});
      }, this.#graceMs);
      timer.unref();
      this.#retired.set(origin, { inst, timer });
    }
  }

  /** Every live instance (for admin views and metrics). */
  all(): IterableIterator<Instance> {
    return this.#byOrigin.values();
  }

  /** Close every pool, retired ones included, waiting for requests in flight. */
  async close(): Promise<void> {
    const all = [...this.#byOrigin.values()];
    for (const { inst, timer } of this.#retired.values()) {
      clearTimeout(timer);
      all.push(inst);
    }
    this.#byOrigin.clear();
    this.#retired.clear();
    await Promise.all(all.map((i) => i.pool.close().catch(() => {})));
  }
}
