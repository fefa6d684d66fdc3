/**
 * An open-loop load generator for the bench's overload section, in its own process (so the
 * bench can pin it with taskset), printing one JSON {@link OpenLoopResult} line on stdout.
 *
 * Open loop: requests start on a fixed schedule (`rate` per second, as a Poisson process
 * with a fixed seed, or evenly spaced), whether or not earlier ones have been answered — unlike autocannon's or
 * wrk's closed loop, where a slow server slows the arrivals and hides its own queue. One
 * undici Pool with many keep-alive connections; a request that finds them all busy waits
 * in undici's queue, and that wait counts in its latency (measured from the moment it was
 * started, until the last byte of the answer). Latency is kept apart for 2xx answers and for
 * 429/503 refusals; other statuses and socket errors are counted.
 *
 *   node load-tests/open-loop.ts '{"url":"http://127.0.0.1:8080/endpoints/bench/score","rate":600,...}'
 */
import { Pool } from 'undici';
import { percentile } from './load-runner.ts';

export interface OpenLoopSpec {
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body: string;
  /** Arrivals per second. */
  rate: number;
  durationS: number;
  /** Seconds of arrivals before `durationS` whose answers are not counted. */
  warmupS: number;
  /** Keep-alive connections the pool may open. */
  connections: number;
  /** After the last arrival, wait at most this long for the answers still out. */
  drainS: number;
  /**
   * `poisson` (default): exponential gaps from a seeded generator, as independent callers
   * arrive and as model-serving benchmarks schedule (vLLM's `bench serve`); `uniform`: evenly
   * spaced, as wrk2 and k6's constant-arrival-rate.
   */
  arrivals?: 'uniform' | 'poisson';
  /** Seed of the Poisson gaps (the same schedule every run). */
  seed?: number;
}

/** Latencies (ms) of one kind of answer. */
export interface Latencies { n: number; rps: number; p50: number; p99: number; max: number }

export interface OpenLoopResult {
  /** Arrivals per second in the measured window. */
  offered: number;
  durationS: number;
  /** 2xx answers. */
  ok: Latencies;
  /** 429 and 503 answers (the gateway's refusals), with a count per status. */
  rejected: Latencies & { byStatus: Record<string, number> };
  /** Answers with any other status. */
  other: number;
  /** Requests that failed at the socket (refused, reset, parse errors). */
  errors: number;
  /** Requests still unanswered `drainS` after the last arrival (abandoned). */
  unfinished: number;
  /** How late the generator started requests against the schedule (ms): it kept pace if small. */
  lagP99: number;
  /** Most requests outstanding at once. */
  maxOutstanding: number;
  /** Connections opened (a server that closes after each refusal shows here). */
  connects: number;
}

class Samples {
  #xs = new Float64Array(1 << 14);
  n = 0;
  add(x: number): void {
    if (this.n === this.#xs.length) {
      const next = new Float64Array(this.#xs.length * 2);
      next.set(this.#xs);
      this.#xs = next;
    }
    this.#xs[this.n++] = x;
  }
  sorted(): Float64Array {
    return this.#xs.subarray(0, this.n).sort();
  }
}

function summarize(s: Samples, seconds: number): Latencies {
  const xs = s.sorted();
  return { n: s.n, rps: s.n / seconds, p50: percentile(xs, 50), p99: percentile(xs, 99), max: xs.length > 0 ? (xs[xs.length - 1] ?? NaN) : NaN };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** mulberry32: a small seeded generator of uniforms in [0, 1), so every run gets the same schedule. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function runOpenLoop(spec: OpenLoopSpec): Promise<OpenLoopResult> {
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, { connections: spec.connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 0, bodyTimeout: 0 });
  const path = url.pathname + url.search;
  let connects = 0;
  pool.on('connect', () => { connects++; });
  const ok = new Samples();
  const rej = new Samples();
  const lag = new Samples();
  const byStatus: Record<string, number> = {};
  let other = 0;
  let errors = 0;
  let outstanding = 0;
  let maxOutstanding = 0;
  let draining = false;
  let measured = 0;
  let allDone: (() => void) | undefined;

  const fire = async (counted: boolean): Promise<void> => {
    const t0 = performance.now();
    outstanding++;
    if (outstanding > maxOutstanding) maxOutstanding = outstanding;
    try {
      const res = await pool.request({ path, method: spec.method, headers: spec.headers, body: spec.body });
      await res.body.text();
      const ms = performance.now() - t0;
      if (!counted) return;
      const s = res.statusCode;
      if (s >= 200 && s < 300) ok.add(ms);
      else if (s === 429 || s === 503) {
        rej.add(ms);
        byStatus[s] = (byStatus[s] ?? 0) + 1;
      } else other++;
    } catch {
      if (counted && !draining) errors++;
    } finally {
      outstanding--;
      if (outstanding === 0) allDone?.();
    }
  };

  const interval = 1000 / spec.rate;
  const random = seeded(spec.seed ?? 9);
  const nextGap = spec.arrivals === 'uniform' ? () => interval : () => -Math.log(1 - random()) * interval;
  const start = performance.now();
  const from = start + spec.warmupS * 1000;
  const end = from + spec.durationS * 1000;
  let due = start;
  while (due < end) {
    const now = performance.now();
    // Start every arrival that is due; then sleep until the next one (timers fire ~1 ms late at best).
    while (due <= now && due < end) {
      const counted = due >= from;
      if (counted) {
        measured++;
        lag.add(now - due);
      }
      void fire(counted);
      due += nextGap();
    }
    await sleep(Math.max(0, Math.min(due, end) - performance.now() - 0.5));
  }
  if (outstanding > 0) {
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      allDone = resolve;
      timer = setTimeout(resolve, spec.drainS * 1000);
    });
    clearTimeout(timer);
  }
  const unfinished = outstanding;
  draining = true;
  await pool.destroy().catch(() => undefined);
  const seconds = spec.durationS;
  const rejected = summarize(rej, seconds);
  return {
    offered: measured / seconds,
    durationS: seconds,
    ok: summarize(ok, seconds),
    rejected: { ...rejected, byStatus },
    other,
    errors,
    unfinished,
    lagP99: percentile(lag.sorted(), 99),
    maxOutstanding,
    connects,
  };
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as OpenLoopSpec;
  runOpenLoop(spec).then(
    (r) => { process.stdout.write(JSON.stringify(r) + '\n'); },
    (err: unknown) => { process.stderr.write(`open-loop: ${String(err)}\n`); process.exitCode = 1; },
  );
}
