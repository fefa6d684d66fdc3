import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { PrimaryChannel } from './channel.ts';
import type { Peer } from './ipc-backend.ts';

/** How long the primary waits for a worker's metrics before the scrape fails. */
export const COLLECT_TIMEOUT_MS = 3000;

export interface MetricsText {
  readonly contentType: string;
  readonly text: string;
}

interface Collection {
  /** Workers asked that have not answered (nor exited) yet. */
  readonly waiting: Set<number>;
  readonly parts: unknown[][];
  readonly resolve: (parts: unknown[][]) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * `/metrics` with N workers, on the primary: each scrape (whichever worker it reached) asks
 * every ready worker for its registry as JSON and merges them with prom-client's
 * `AggregatorRegistry.aggregate`, each metric by its `aggregator` (sum unless the metric
 * says otherwise: see gateway/metrics.ts). Not `clusterMetrics()`: that asks every
 * connected worker, so one still starting (not answering yet) fails every scrape for 5 s,
 * and a worker that exits mid-scrape is waited for. Here a worker that exits mid-scrape is
 * left out (its counts went with it), and one that does not answer fails the scrape: a
 * partial sum would read as a counter reset.
 */
export class ClusterMetrics {
  /** The primary's own metrics, merged in with the workers'. */
  readonly registry = new Registry();
  readonly restarts = new Counter({
    name: 'switchyard_worker_restarts_total',
    help: 'Worker processes restarted by the primary after an unexpected exit (serve --workers N).',
    registers: [this.registry],
  });
  readonly running = new Gauge({
    name: 'switchyard_workers',
    help: 'Worker processes running (serve --workers N): fewer than N while one restarts.',
    registers: [this.registry],
  });
  readonly #peers: () => Iterable<Peer>;
  readonly #timeoutMs: number;
  /** Each worker's metrics as last collected. */
  readonly #last = new Map<number, unknown[]>();
  /**
   * The counters and histograms of workers that exited, as last collected, merged: kept in
   * the sum so that a worker's death (and restart from zero) does not make the aggregate
   * go down, which Prometheus would read as a reset of the whole gateway's counters. What a
   * worker counted after the last scrape before it died is lost, never counted twice.
   */
  #retired: unknown[] = [];
  /** Retirements one at a time; a scrape waits for the one under way. */
  #retiring: Promise<void> = Promise.resolve();
  readonly #pending = new Map<number, Collection>();
  #nextId = 1;

  /** `peers`: the workers that are ready (a starting worker has no registry to send yet). */
  constructor(peers: () => Iterable<Peer>, timeoutMs = COLLECT_TIMEOUT_MS) {
    this.#peers = peers;
    this.#timeoutMs = timeoutMs;
    this.running.set(0);
  }

  async aggregate(): Promise<MetricsText> {
    const own = await this.registry.getMetricsAsJSON();
    const parts = await this.#collect();
    await this.#retiring;
    const merged = merge([own, this.#retired, ...parts]);
    return { contentType: merged.contentType, text: await merged.metrics() };
  }

  /** A worker's answer to a collect. */
  answered(worker: number, id: number, metrics: unknown[] | undefined, error: string | undefined): void {
    const c = this.#pending.get(id);
    if (!c || !c.waiting.delete(worker)) return;
    if (error !== undefined || !Array.isArray(metrics)) {
      this.#finish(id, c, new Error(`worker ${worker} could not read its metrics: ${error ?? 'no answer'}`));
      return;
    }
    c.parts.push(metrics);
    this.#last.set(worker, metrics);
    if (c.waiting.size === 0) this.#finish(id, c);
  }

  /** A worker exited: scrapes waiting for it go on without it; its counts stay in the sum. */
  gone(worker: number): void {
    for (const [id, c] of this.#pending) if (c.waiting.delete(worker) && c.waiting.size === 0) this.#finish(id, c);
    const last = this.#last.get(worker);
    this.#last.delete(worker);
    if (!last) return;
    // Gauges (in flight, ready) were true of a process that is gone: dropped.
    const counts = last.filter((m) => { const t = (m as { type?: unknown }).type; return t === 'counter' || t === 'histogram'; });
    this.#retiring = this.#retiring.then(async () => {
      this.#retired = await merge([this.#retired, counts]).getMetricsAsJSON();
    }).catch(() => {});
  }

  #collect(): Promise<unknown[][]> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const waiting = new Set<number>();
      const timer = setTimeout(() => {
        const c = this.#pending.get(id);
        if (c) this.#finish(id, c, new Error(`worker(s) ${[...c.waiting].join(', ')} did not send their metrics within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      timer.unref();
      const c: Collection = { waiting, parts: [], resolve, reject, timer };
      this.#pending.set(id, c);
      for (const p of this.#peers()) {
        waiting.add(p.id);
        p.send({ type: 'switchyard:collect', id });
      }
      if (waiting.size === 0) this.#finish(id, c);
    });
  }

  #finish(id: number, c: Collection, err?: Error): void {
    this.#pending.delete(id);
    clearTimeout(c.timer);
    if (err) c.reject(err);
    else c.resolve(c.parts);
  }
}

/** One registry of several registries' metrics as JSON, each metric by its aggregator. */
function merge(parts: unknown[][]): Registry {
  return AggregatorRegistry.aggregate(parts as Parameters<typeof AggregatorRegistry.aggregate>[0]);
}

/** The worker's side: answer the primary's collects with this registry, and ask it for the aggregate. */
export function workerMetrics(channel: PrimaryChannel, registry: () => Registry | undefined): () => Promise<MetricsText> {
  channel.on('switchyard:collect', (m) => {
    // The primary asks only workers that said they are ready, which have a registry.
    const r = registry();
    if (!r) {
      channel.send({ type: 'switchyard:metrics-json', id: m.id, error: 'not started yet' });
      return;
    }
    r.getMetricsAsJSON().then(
      (metrics) => channel.send({ type: 'switchyard:metrics-json', id: m.id, metrics }),
      (err: Error) => channel.send({ type: 'switchyard:metrics-json', id: m.id, error: err.message }),
    );
  });
  return () => channel.call<MetricsText>({ op: 'metrics' });
}
