/**
 * The load of load-tests/live-edit.ts: open-loop arrivals at a fixed rate per target (k6's
 * constant-arrival-rate: evenly spaced, whether or not earlier ones were answered), through
 * one undici Pool per target, every request kept as a record — when it was sent, how long it
 * took, its status and the deployment that answered — so the analysis can place each answer
 * before or after a change.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';

export interface LoadRecord {
  /** Index of the target (0 = replica A, 1 = replica B). */
  readonly target: number;
  /** performance.now() when the request was started. */
  readonly sent: number;
  /** Until the last byte of the answer (or the error), ms. */
  readonly ms: number;
  /** 0 for a socket/request error. */
  readonly status: number;
  /** `azureml-model-deployment` of the answer, '' when none. */
  readonly deployment: string;
}

const BODY = JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });

export class ArrivalLoad {
  readonly records: LoadRecord[] = [];
  readonly #pools: Pool[];
  readonly #path: string;
  readonly #headers: Record<string, string>;
  readonly #gapMs: number;
  #running = false;
  #loop: Promise<void> | undefined;
  readonly #inFlight = new Set<Promise<void>>();

  /** `rate` arrivals a second to each of `origins`. */
  constructor(origins: readonly string[], path: string, key: string, rate: number) {
    this.#pools = origins.map((o) => new Pool(o, { connections: 64, pipelining: 1, keepAliveTimeout: 30_000 }));
    this.#path = path;
    this.#headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    this.#gapMs = 1000 / rate;
  }

  start(): void {
    this.#running = true;
    this.#loop = this.#schedule();
  }

  /** Stop the arrivals, wait for the answers still out, close the pools. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
    await Promise.all(this.#inFlight);
    await Promise.all(this.#pools.map((p) => p.close()));
  }

  async #schedule(): Promise<void> {
    const n = this.#pools.length;
    // The targets' arrivals interleave (B half a gap after A), so neither sees bursts of two.
    const due = this.#pools.map((_, i) => performance.now() + (i * this.#gapMs) / n);
    while (this.#running) {
      const now = performance.now();
      for (let i = 0; i < n; i++) {
        while (due[i]! <= now) {
          this.#fire(i);
          due[i]! += this.#gapMs;
        }
      }
      // Timers fire about 1 ms late at best: wake a little early.
      await sleep(Math.max(0, Math.min(...due) - performance.now() - 0.5));
    }
  }

  #fire(target: number): void {
    const sent = performance.now();
    const p = (async () => {
      let status = 0;
      let deployment = '';
      try {
        const res = await this.#pools[target]!.request({ path: this.#path, method: 'POST', headers: this.#headers, body: BODY, headersTimeout: 10_000, bodyTimeout: 10_000 });
        await res.body.dump();
        status = res.statusCode;
        const d = res.headers['azureml-model-deployment'];
        deployment = typeof d === 'string' ? d : '';
      } catch {
        // status stays 0: no answer.
      }
      this.records.push({ target, sent, ms: performance.now() - sent, status, deployment });
    })();
    this.#inFlight.add(p);
    void p.finally(() => this.#inFlight.delete(p));
  }
}
