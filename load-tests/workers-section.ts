/**
 * The bench's multi-core section (issue 13): the `switchyard` row's gateway started as
 * `switchyard serve --workers 1` and `--workers 2`, closed-loop throughput at the bench's
 * connections, rounds interleaved, req/s and latency per worker count and the ratio of 2 to 1
 * taken per round.
 *
 * Neither gateway is pinned (the point is to let it use a second core), while the load
 * generator and the backend stay pinned to CPU 1 as in the rest of the bench. On a 2-core
 * machine the second worker therefore shares CPU 1 with the load generator and the backend:
 * the ratio measured there is what a second worker adds *after* that contention, not what it
 * adds on a machine where the gateway has the cores to itself. The table says so.
 *
 * CPU per request and RSS are summed over the gateway's whole process tree (the primary
 * and its workers), read from /proc.
 */
import { readFileSync } from 'node:fs';
import { fmt, kill, median, medianPerRound, procStats, runLoad, table } from './bench-lib.ts';
import { SWITCHYARD_VARIANTS, startSwitchyard, type Target } from './bench-targets.ts';
import type { LoadResult, LoadSpec } from './load-runner.ts';

export interface WorkersOptions {
  readonly counts: readonly number[];
  readonly rounds: number;
  /** The spec of one run against a target (the bench's throughput spec). */
  readonly spec: (t: Target) => LoadSpec;
  readonly firstWarmupS: number;
  readonly backendUrl: string;
  readonly logDir: string;
  readonly progress: (line: string) => void;
}

/** The pids of `pid` and all its descendants (Linux: /proc/PID/task/TID/children). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i]!;
    try {
      for (const c of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
    } catch { /* gone, or not Linux */ }
  }
  return out;
}

/** CPU ms and RSS MiB summed over a process tree; undefined when /proc has none of it. */
export function treeStats(pid: number | undefined): { cpuMs: number; rssMiB: number; processes: number } | undefined {
  if (!pid) return undefined;
  let cpuMs = 0;
  let rssMiB = 0;
  let processes = 0;
  for (const p of processTree(pid)) {
    const s = procStats(p);
    if (!s) continue;
    cpuMs += s.cpuMs;
    rssMiB += s.rssMiB;
    processes++;
  }
  return processes > 0 ? { cpuMs, rssMiB, processes } : undefined;
}

type Run = LoadResult & { cpuUsPerReq: number; rssMiB: number; processes: number };

/** The section's markdown, or throws when no worker count could be started (the bench notes why). */
export async function workersSection(o: WorkersOptions): Promise<string> {
  const variant = SWITCHYARD_VARIANTS.find((v) => v.name === 'switchyard');
  if (!variant) throw new Error('no `switchyard` variant');
  const targets: Target[] = [];
  const notes: string[] = [];
  try {
    for (const n of o.counts) {
      try {
        targets.push(await startSwitchyard(variant, o.backendUrl, o.logDir, undefined, `workers-${n}`, { args: ['--workers', String(n)], cpu: undefined }));
        o.progress(`started switchyard --workers ${n}`);
      } catch (err) {
        notes.push(`--workers ${n}: skipped — ${String(err).split('\n').slice(0, 4).join(' / ')}`);
      }
    }
    if (targets.length === 0) throw new Error(notes.join('; '));
    for (const t of targets) await runLoad({ ...o.spec(t), durationS: o.firstWarmupS, warmupS: 0 }, o.logDir);
    const runs = new Map<string, (Run | undefined)[]>(targets.map((t) => [t.name, new Array<Run | undefined>(o.rounds)]));
    for (let r = 0; r < o.rounds; r++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(i + r) % targets.length]!;
        try {
          const spec = o.spec(t);
          const before = treeStats(t.pid);
          const res = await runLoad(spec, o.logDir);
          const after = treeStats(t.pid);
          const served = res.served ?? res.rps * (spec.durationS + spec.warmupS);
          const run: Run = {
            ...res,
            cpuUsPerReq: before && after ? ((after.cpuMs - before.cpuMs) * 1000) / served : NaN,
            rssMiB: after?.rssMiB ?? NaN,
            processes: after?.processes ?? 0,
          };
          runs.get(t.name)![r] = run;
          o.progress(`  workers round ${r + 1}/${o.rounds} ${t.name.padEnd(12)} ${fmt(run.rps, 0)} req/s  p50 ${fmt(run.p50)} ms  p99 ${fmt(run.p99)} ms  (${run.processes} processes)`);
        } catch (err) {
          o.progress(`  workers round ${r + 1}/${o.rounds} ${t.name}: FAILED ${String(err)}`);
        }
      }
    }
    return report(targets, runs, notes);
  } finally {
    // The section's gateways go now: the sections after it measure with the CPUs free.
    await Promise.all(targets.map((t) => (t.proc ? kill(t.proc) : Promise.resolve())));
  }
}

function report(targets: Target[], runs: Map<string, (Run | undefined)[]>, notes: string[]): string {
  const ok = (rs: (Run | undefined)[]): Run[] => rs.filter((x): x is Run => x !== undefined);
  const first = runs.get(targets[0]!.name) ?? [];
  const rows = targets.map((t) => {
    const rs = runs.get(t.name) ?? [];
    const m = (f: (r: Run) => number): number => median(ok(rs).map(f));
    const bad = ok(rs).reduce((s, r) => s + r.non2xx + r.errors, 0);
    return [t.name.replace('workers-', ''), fmt(m((r) => r.rps), 0), fmt(medianPerRound(rs, first, (x, y) => x.rps / y.rps)),
      fmt(m((r) => r.p50)), fmt(m((r) => r.p99)), fmt(m((r) => r.cpuUsPerReq), 1), fmt(m((r) => r.rssMiB), 0),
      String(m((r) => r.processes)), String(bad)];
  });
  return [
    table(['workers', 'req/s', `vs ${targets[0]!.name.replace('workers-', '')} worker(s)`, 'p50 ms', 'p99 ms', 'CPU µs/req (all processes)', 'RSS MiB (all)', 'processes', 'non-2xx + errors'], rows),
    '',
    '- The gateways are not pinned; the load generator and the backend stay on CPU 1. On a 2-core machine a second worker '
      + 'competes with them for that core, so the ratio understates what it gives a gateway with cores of its own.',
    ...notes.map((n) => `- ${n}`),
  ].join('\n');
}
