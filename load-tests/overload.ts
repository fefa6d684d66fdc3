/**
 * The bench's overload section (issue 9): a model server with a fixed number of workers
 * (load-tests/model-backend.ts), Switchyard in front with `max_concurrent_requests_per_instance`
 * = the worker count and a small `max_queue_wait_ms`, and an open-loop generator
 * (load-tests/open-loop.ts) at a fixed arrival rate (Poisson arrivals by default, seeded per
 * round, as model-serving benchmarks schedule them; `--overload-arrivals uniform` spaces
 * them evenly):
 *
 *   (a) ~0.5x capacity through Switchyard: the unloaded latency of admitted requests;
 *   (b) 3x capacity through Switchyard: admitted requests keep their latency (p99 within 2x
 *       of (a)), the excess is refused at once (429/503 p99 under 5 ms), and the model never
 *       has more requests than workers in flight;
 *   (c) 3x capacity straight at the model, for contrast: its own queue grows for the whole
 *       run, and so does everybody's latency.
 *
 * Rounds interleave (a), (b), (c); figures are medians over rounds (ratios per round, then
 * the median), the model's in-flight maximum is the largest of any round. The generator runs
 * pinned with the model (CPU_LOAD), Switchyard on its own CPU (CPU_PROXY), as in the rest
 * of the bench.
 */
import { join } from 'node:path';
import {
  CPU_LOAD, HERE, fmt, freePort, httpStatus, median, medianPerRound, runJsonChild, spawnNode, table, waitReady,
} from './bench-lib.ts';
import { BODY, startSwitchyard, type SwitchyardVariant, type Target } from './bench-targets.ts';
import type { OpenLoopResult, OpenLoopSpec } from './open-loop.ts';

export interface OverloadOptions {
  rounds: number;
  durationS: number;
  warmupS: number;
  /** Seconds of 3x load through Switchyard before the first round (JIT, connections). */
  firstWarmupS: number;
  /** The model's workers; Switchyard's `max_concurrent_requests_per_instance`. */
  workers: number;
  /** How long a request holds a worker (ms). */
  serviceMs: number;
  /** Switchyard's `max_queue_wait_ms`. */
  queueWaitMs: number;
  /** Offered load of (b) and (c), in multiples of the model's capacity. */
  factor: number;
  /** Offered load of (a), in multiples of capacity. */
  unloadedFactor: number;
  arrivals: 'uniform' | 'poisson';
  logDir: string;
  progress(line: string): void;
}

const KEY = 'overload-key-0123456789abcdef-bench';
/** Keep-alive connections the generator may open: enough that the direct run's backlog sits in the model. */
const CONNECTIONS = 1024;
/** Targets of issue 9's performance section. */
const MAX_P99_RATIO = 2;
const MAX_REFUSAL_P99_MS = 5;

interface ModelStats { workers: number; serviceMs: number; inFlight: number; maxInFlight: number; maxQueued: number; served: number }
type Run = OpenLoopResult & { modelMaxInFlight: number; reasons?: Record<string, number> };

function overloadVariant(o: OverloadOptions): SwitchyardVariant {
  return {
    name: 'switchyard-overload',
    setup: async (modelUrl) => ({
      config: {
        endpoints: {
          bench: {
            auth_mode: 'key',
            keys: { primary: KEY },
            traffic: { model: 100 },
            deployments: {
              model: {
                instances: [modelUrl],
                request_settings: {
                  max_concurrent_requests_per_instance: o.workers,
                  max_queue_wait_ms: o.queueWaitMs,
                  request_timeout_ms: 30_000,
                },
              },
            },
          },
        },
      },
      headers: { authorization: `Bearer ${KEY}` },
    }),
  };
}

async function modelStats(modelUrl: string, reset: boolean): Promise<ModelStats> {
  const r = await httpStatus(`${modelUrl}/stats${reset ? '?reset=1' : ''}`);
  if (r.status !== 200) throw new Error(`model backend /stats -> ${r.status} ${r.body.slice(0, 200)}`);
  return JSON.parse(r.body) as ModelStats;
}

/** `switchyard_throttled_total` by reason, summed over endpoints. */
async function throttled(adminUrl: string | undefined): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  if (!adminUrl) return out;
  const r = await httpStatus(`${adminUrl}/metrics`);
  for (const m of r.body.matchAll(/^switchyard_throttled_total\{([^}]*)\} (\S+)$/gm)) {
    const reason = /reason="([^"]*)"/.exec(m[1] ?? '')?.[1] ?? '?';
    out[reason] = (out[reason] ?? 0) + Number(m[2]);
  }
  return out;
}

function diff(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

export async function overloadSection(o: OverloadOptions): Promise<string> {
  const port = await freePort();
  const modelUrl = `http://127.0.0.1:${port}`;
  const model = spawnNode('model-backend', join(HERE, 'model-backend.ts'), [
    '--port', String(port), '--workers', String(o.workers), '--service-ms', String(o.serviceMs),
  ], { cpu: CPU_LOAD, logDir: o.logDir });
  await waitReady(model, async () => (await httpStatus(`${modelUrl}/stats`)).status === 200, 10_000);
  const gw = await startSwitchyard(overloadVariant(o), modelUrl, o.logDir);
  const direct: Target = { name: 'direct', url: `${modelUrl}/score`, headers: {} };

  const capacity = (o.workers * 1000) / o.serviceMs;
  const low = capacity * o.unloadedFactor;
  const high = capacity * o.factor;
  // Past the last arrival the direct run's backlog drains at `capacity`: wait for all of it.
  const drainS = (o.durationS + o.warmupS) * o.factor + 10;

  const spec = (t: Target, rate: number, durationS: number, warmupS: number, seed: number): OpenLoopSpec => ({
    url: t.url, method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: BODY,
    rate, durationS, warmupS, connections: CONNECTIONS, drainS, arrivals: o.arrivals, seed,
  });
  const run = async (label: string, t: Target, rate: number, warmupS: number, seed: number, durationS = o.durationS): Promise<Run> => {
    await modelStats(modelUrl, true);
    const before = t === gw ? await throttled(gw.adminUrl) : {};
    const r = await runJsonChild<OpenLoopResult>('open-loop', join(HERE, 'open-loop.ts'), spec(t, rate, durationS, warmupS, seed),
      durationS + warmupS + drainS + 30, o.logDir);
    const stats = await modelStats(modelUrl, false);
    const out: Run = { ...r, modelMaxInFlight: stats.maxInFlight };
    if (t === gw) out.reasons = diff(await throttled(gw.adminUrl), before);
    o.progress(`  overload ${label.padEnd(28)} offered ${fmt(r.offered, 0)}/s  2xx ${fmt(r.ok.rps, 0)}/s p50 ${fmt(r.ok.p50)} p99 ${fmt(r.ok.p99)} ms` +
      `  refused ${fmt(r.rejected.rps, 0)}/s p99 ${fmt(r.rejected.p99)} ms  model max in flight ${stats.maxInFlight}` +
      `  (lag p99 ${fmt(r.lagP99)} ms, ${r.connects} connections)` +
      (r.other + r.errors + r.unfinished > 0 ? `  (${r.other} other, ${r.errors} errors, ${r.unfinished} unanswered)` : ''));
    return out;
  };

  o.progress(`overload: model ${o.workers} workers x ${o.serviceMs} ms = ${fmt(capacity, 0)} req/s; Switchyard limit ${o.workers}, ` +
    `max_queue_wait_ms ${o.queueWaitMs}; ${o.rounds} round(s) x (${o.warmupS} s warm-up + ${o.durationS} s), ${o.arrivals} arrivals`);
  await run('warm-up (3x via Switchyard)', gw, high, 0, 0, o.firstWarmupS);
  const a: (Run | undefined)[] = [];
  const b: (Run | undefined)[] = [];
  const c: (Run | undefined)[] = [];
  for (let r = 0; r < o.rounds; r++) {
    const tag = `round ${r + 1}/${o.rounds}`;
    // The same arrival schedule (seed) for the three runs of a round, another one each round.
    a.push(await run(`${tag} ${o.unloadedFactor}x via Switchyard`, gw, low, o.warmupS, r + 1));
    b.push(await run(`${tag} ${o.factor}x via Switchyard`, gw, high, o.warmupS, r + 1));
    // No warm-up: the model's queue starts empty, so this is the least it could show.
    c.push(await run(`${tag} ${o.factor}x direct`, direct, high, 0, r + 1));
  }
  return report(o, capacity, a, b, c);
}

function report(o: OverloadOptions, capacity: number, a: (Run | undefined)[], b: (Run | undefined)[], c: (Run | undefined)[]): string {
  const med = (rs: (Run | undefined)[], f: (r: Run) => number): number => median(rs.filter((r): r is Run => r !== undefined).map(f));
  const max = (rs: (Run | undefined)[], f: (r: Run) => number): number => Math.max(...rs.filter((r): r is Run => r !== undefined).map(f));
  const sum = (rs: (Run | undefined)[], f: (r: Run) => number): number => rs.reduce((s, r) => s + (r ? f(r) : 0), 0);
  const mark = (ok: boolean): string => (ok ? '✅ met' : '❌ not met');
  const cols = [a, b, c];
  const row = (label: string, f: (r: Run) => number, digits = 2): string[] => [label, ...cols.map((rs) => fmt(med(rs, f), digits))];

  const p99Ratio = (rs: (Run | undefined)[]): number => medianPerRound(rs, a, (x, y) => x.ok.p99 / y.ok.p99);
  const ratioB = p99Ratio(b);
  const refusalP99 = med(b, (r) => r.rejected.p99);
  const modelMax = max(b, (r) => r.modelMaxInFlight);
  const reasonText = (rs: (Run | undefined)[]): string => {
    const by: Record<string, number> = {};
    for (const r of rs) for (const [k, v] of Object.entries(r?.reasons ?? {})) by[k] = (by[k] ?? 0) + v;
    return Object.entries(by).map(([k, v]) => `${k} ${v}`).join(', ') || '0';
  };
  const statusText = (rs: (Run | undefined)[]): string => {
    const by: Record<string, number> = {};
    for (const r of rs) for (const [k, v] of Object.entries(r?.rejected.byStatus ?? {})) by[k] = (by[k] ?? 0) + v;
    return Object.entries(by).map(([k, v]) => `${k}: ${v}`).join(', ') || '0';
  };

  const head = ['measure', `${o.unloadedFactor}x via Switchyard (a)`, `${o.factor}x via Switchyard (b)`, `${o.factor}x direct (c)`, 'target', 'met'];
  const rows: string[][] = [
    [...row('offered req/s', (r) => r.offered, 0), '', ''],
    [...row('admitted (2xx) req/s', (r) => r.ok.rps, 0), '', ''],
    [...row('admitted p50 ms', (r) => r.ok.p50), '', ''],
    [...row('admitted p99 ms', (r) => r.ok.p99), '', ''],
    ['admitted p99 ÷ unloaded p99', '1.00', fmt(ratioB), fmt(p99Ratio(c)), `(b) ≤ ${MAX_P99_RATIO}`, mark(ratioB <= MAX_P99_RATIO)],
    [...row('refused (429/503) req/s', (r) => r.rejected.rps, 0), '', ''],
    [...row('refused p50 ms', (r) => r.rejected.p50), '', ''],
    [...row('refused p99 ms', (r) => r.rejected.p99), `(b) < ${MAX_REFUSAL_P99_MS}`, mark(refusalP99 < MAX_REFUSAL_P99_MS)],
    ['refusals by status (all rounds)', statusText(a), statusText(b), statusText(c), '', ''],
    ['refusals by reason (Switchyard metrics, all rounds)', reasonText(a), reasonText(b), '', '', ''],
    ['model max in flight (largest of any round)', ...cols.map((rs) => {
      const m = max(rs, (r) => r.modelMaxInFlight);
      return m >= CONNECTIONS ? `${m} (all the generator's connections)` : String(m);
    }), `(b) ≤ ${o.workers}`, mark(modelMax <= o.workers)],
    ['other statuses + socket errors + unanswered (all rounds)', ...cols.map((rs) => String(sum(rs, (r) => r.other + r.errors + r.unfinished))), '', ''],
    [...row('generator lag p99 ms (start vs schedule)', (r) => r.lagP99), '', ''],
  ];
  return [
    `Model: ${o.workers} workers x ${o.serviceMs} ms = ${fmt(capacity, 0)} req/s capacity, unbounded FIFO behind them. ` +
      `Switchyard: \`max_concurrent_requests_per_instance: ${o.workers}\`, \`max_queue_wait_ms: ${o.queueWaitMs}\`. ` +
      `Open-loop ${o.arrivals === 'poisson' ? 'Poisson (seeded)' : 'evenly spaced'} arrivals (load-tests/open-loop.ts, ${CONNECTIONS} keep-alive connections at most), ` +
      `${o.rounds} round(s) of (a), (b) after ${o.warmupS} s warm-up and (c) from an empty queue, ${o.durationS} s each; ` +
      'latency from the request start to the last byte of the answer; medians over rounds.',
    '',
    table(head, rows),
  ].join('\n');
}
