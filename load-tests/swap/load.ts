/**
 * Constant closed-loop load through the gateway: `connections` keep-alive connections
 * (one undici Pool, pipelining 1), each sending the next request as soon as the previous
 * one ended. Every response status and every socket/request error is counted, per phase
 * (a request belongs to the phase in which it was sent). With `keepRecords` each request's
 * send and end times, status or error and serving instance are kept too (the hard-kill part
 * needs them).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { SEQ_HEADER } from './model-server.ts';

export interface PhaseStats {
  readonly name: string;
  readonly startedAt: number;
  endedAt: number;
  requests: number;
  ok: number;
  /** Non-2xx responses by status. */
  readonly statuses: Map<number, number>;
  /** Request/socket errors by code. */
  readonly errors: Map<string, number>;
  /** 2xx responses by deployment (`azureml-model-deployment`) and by instance (`x-instance`). */
  readonly byDeployment: Map<string, number>;
  readonly byInstance: Map<string, number>;
  /** Latency of each 2xx response (ms). */
  readonly latencies: number[];
  /** What happened in the phase, in words (for the summary). */
  note: string;
}

export interface RequestRecord {
  readonly seq: number;
  /** Date.now() when sent and when it ended. */
  readonly sentAt: number;
  readonly endAt: number;
  /** The status, or 0 with `error` for a request/socket error. */
  readonly status: number;
  readonly error: string | undefined;
  readonly instance: string | undefined;
}

export interface LoadOptions {
  readonly url: string;
  readonly path: string;
  readonly key: string;
  readonly connections: number;
  readonly keepRecords?: boolean;
  /** Paced: at most this many requests per second over all connections (0: closed loop, as fast as answers come). */
  readonly rate?: number;
}

function newPhase(name: string): PhaseStats {
  return { name, startedAt: Date.now(), endedAt: 0, requests: 0, ok: 0, statuses: new Map(), errors: new Map(), byDeployment: new Map(), byInstance: new Map(), latencies: [], note: '' };
}

function bump<K>(m: Map<K, number>, k: K): void {
  m.set(k, (m.get(k) ?? 0) + 1);
}

const BODY = '{"data":[[1,2,3],[4,5,6]]}';

export class LoadLoop {
  readonly phases: PhaseStats[] = [];
  readonly records: RequestRecord[] = [];
  readonly #opts: LoadOptions;
  readonly #pool: Pool;
  readonly #headers: Record<string, string>;
  #phase: PhaseStats;
  #stopping = false;
  #workers: Promise<void>[] = [];
  #seq = 0;
  /** Paced load: when the next request is due (performance.now()). */
  #nextAt = 0;

  constructor(opts: LoadOptions, firstPhase: string) {
    this.#opts = opts;
    this.#pool = new Pool(opts.url, { connections: opts.connections, pipelining: 1, keepAliveTimeout: 30_000, keepAliveMaxTimeout: 60_000 });
    this.#headers = { authorization: `Bearer ${opts.key}`, 'content-type': 'application/json' };
    this.#phase = newPhase(firstPhase);
    this.phases.push(this.#phase);
  }

  get current(): PhaseStats {
    return this.#phase;
  }

  /** Requests sent so far (all phases). */
  get sent(): number {
    return this.#seq;
  }

  start(): void {
    this.#nextAt = performance.now();
    for (let i = 0; i < this.#opts.connections; i++) this.#workers.push(this.#worker());
  }

  /** Requests sent from now on count in a new phase. */
  phase(name: string): PhaseStats {
    this.#phase.endedAt = Date.now();
    this.#phase = newPhase(name);
    this.phases.push(this.#phase);
    return this.#phase;
  }

  /** Stop sending; wait for every request in flight to end; close the connections. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all(this.#workers);
    this.#phase.endedAt = Date.now();
    await this.#pool.close();
  }

  async #worker(): Promise<void> {
    const keep = this.#opts.keepRecords === true;
    const gap = this.#opts.rate ? 1000 / this.#opts.rate : 0;
    while (!this.#stopping) {
      if (gap > 0) {
        const due = this.#nextAt;
        this.#nextAt = Math.max(due, performance.now() - 50) + gap;
        const wait = due - performance.now();
        if (wait > 1) await sleep(wait);
        if (this.#stopping) break;
      }
      const seq = ++this.#seq;
      const phase = this.#phase;
      phase.requests++;
      const sentAt = Date.now();
      const t0 = performance.now();
      let status = 0;
      let error: string | undefined;
      let instance: string | undefined;
      try {
        const r = await this.#pool.request({
          path: this.#opts.path,
          method: 'POST',
          headers: { ...this.#headers, [SEQ_HEADER]: String(seq) },
          body: BODY,
          headersTimeout: 10_000,
          bodyTimeout: 10_000,
        });
        await r.body.dump();
        status = r.statusCode;
        const ms = performance.now() - t0;
        const d = r.headers['azureml-model-deployment'];
        const inst = r.headers['x-instance'];
        instance = typeof inst === 'string' ? inst : undefined;
        if (status >= 200 && status < 300) {
          phase.ok++;
          phase.latencies.push(ms);
          bump(phase.byDeployment, typeof d === 'string' ? d : '?');
          bump(phase.byInstance, instance ?? '?');
        } else {
          bump(phase.statuses, status);
        }
      } catch (err) {
        const e = err as { code?: string; name?: string; message?: string };
        error = e.code ?? e.name ?? 'error';
        bump(phase.errors, error);
      }
      if (keep) this.records.push({ seq, sentAt, endAt: Date.now(), status, error, instance });
    }
  }
}

/** The p-th percentile (0..100) of `xs`, nearest rank. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN;
}
