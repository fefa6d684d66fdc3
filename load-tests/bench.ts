/**
 * `npm run bench`: Switchyard side by side with a direct call, a bare undici proxy,
 * http-proxy and nginx (when installed) — same backend, same load generator, configurations
 * interleaved and repeated, medians over rounds, ratios taken per round then medianed
 * (method of shared/research/proxy-baseline.md). Sections, in order:
 *
 * 1. Throughput (closed loop, `--connections`): every target; Switchyard variants are
 *    `switchyard` (key auth), `switchyard-jwt` (Entra token), `switchyard-ratelimit` (an
 *    in-process rate limit no run reaches) and `switchyard-ratelimit-redis` (the same limit
 *    kept in a redis-server the bench starts itself; skipped with a note without one).
 *    Ratio rows: each Switchyard against the baselines, and the issue-9 targets
 *    `switchyard-ratelimit / switchyard` ≥ 0.95 and `switchyard-ratelimit-redis /
 *    switchyard-ratelimit` ≥ 0.8 (req/s).
 * 2. Modest load (`--no-modest` skips): ~1000 req/s, added p50/p99 over direct.
 * 3. 1 MiB request bodies (`--no-big` skips).
 * 2b. Workers (`--no-workers` skips; load-tests/workers-section.ts): the `switchyard` gateway as
 *    `serve --workers 1` and `--workers 2`, unpinned, closed loop as in 1 (issue 13).
 * 2c. Steady load (`--no-steady` skips; load-tests/steady-section.ts): k6/steady.js's scenario
 *    (load-tests/k6/steady.json) through the Node open-loop runner: p50/p99 (issue 13).
 * 4. Overload (`--no-overload` skips; load-tests/overload.ts): a model server with a fixed
 *    number of workers behind Switchyard's concurrency limit, open-loop load at 0.5x and 3x
 *    its capacity, and 3x straight at the model for contrast; one table with the targets
 *    (admitted p99 ≤ 2x unloaded, refusals p99 < 5 ms, the model never above its workers).
 *
 *   node load-tests/bench.ts [--rounds 3] [--duration 5] [--connections 64] [--quick]
 *                            [--loadgen auto|autocannon|wrk] [--modest-rate 1000]
 *                            [--modest-connections 10] [--modest-delay-ms N] [--no-modest]
 *                            [--baseline-ref GIT_REF] [--no-big] [--no-overload]
 *                            [--targets switchyard,switchyard-ratelimit,...]
 *                            [--overload-workers 4] [--overload-service-ms 20]
 *                            [--overload-queue-wait-ms 50] [--overload-factor 3]
 *                            [--overload-arrivals poisson|uniform]
 *                            [--no-workers] [--workers 1,2] [--no-steady]
 *                            [--steady-duration 10] [--steady-rate N]
 *
 * `--targets`: only the named rows of the first three sections (plus `direct`, the reference),
 * for a focused comparison with more rounds, e.g. `--targets switchyard,switchyard-ratelimit
 * --rounds 10 --no-modest --no-big --no-overload`.
 *
 * `--quick`: one round of 1 s (after 0.25 s of warm-up) per target and section, for checking
 * that the bench works (about a minute), not for figures.
 *
 * `--baseline-ref main~3` also runs Switchyard as it was at that commit (a temporary git
 * worktree sharing this node_modules), interleaved with the rest, and reports
 * `switchyard / switchyard@REF`: a before/after comparison in one run.
 *
 * `BENCH_KEEP_LOGS=1` keeps the Switchyard processes' access logs in their log files (for
 * finding out what a non-2xx count was; the temporary directory still goes at exit).
 *
 * Markdown goes to stdout, progress to stderr. Every child process (redis-server included)
 * is killed at the end.
 */
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CPU_LOAD, CPU_PROXY, HERE, PIN, fmt, freePort, installCleanup, killAll, median,
  medianPerRound, onPath, procStats, runLoad, spawnNode, table, tempDir,
} from './bench-lib.ts';
import type { Proc } from './bench-lib.ts';
import { V8_FLAGS } from '../bin/v8-flags.mjs';
import type { LoadResult, LoadSpec } from './load-runner.ts';
import {
  BODY, SWITCHYARD_BIN, SWITCHYARD_VARIANTS, baselineTree, checkTarget, startNginx, startSwitchyard, type Target,
} from './bench-targets.ts';
import { overloadSection } from './overload.ts';
import { steadyHeading, steadySection } from './steady-section.ts';
import { workersSection } from './workers-section.ts';

const { values: a } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    quick: { type: 'boolean', default: false },
    loadgen: { type: 'string', default: 'auto' },
    'modest-rate': { type: 'string', default: '1000' },
    'modest-connections': { type: 'string', default: '10' },
    'modest-delay-ms': { type: 'string' },
    'no-modest': { type: 'boolean', default: false },
    'no-big': { type: 'boolean', default: false },
    'baseline-ref': { type: 'string' },
    targets: { type: 'string' },
    'no-overload': { type: 'boolean', default: false },
    'overload-workers': { type: 'string', default: '4' },
    'overload-service-ms': { type: 'string', default: '20' },
    'overload-queue-wait-ms': { type: 'string', default: '50' },
    'overload-factor': { type: 'string', default: '3' },
    'overload-arrivals': { type: 'string', default: 'poisson' },
    'no-workers': { type: 'boolean', default: false },
    workers: { type: 'string', default: '1,2' },
    'no-steady': { type: 'boolean', default: false },
    'steady-duration': { type: 'string', default: '10' },
    'steady-rate': { type: 'string' },
  },
});
const ROUNDS = a.quick ? 1 : Math.max(1, Number(a.rounds));
const DURATION = a.quick ? 1 : Math.max(1, Number(a.duration));
const CONNECTIONS = Math.max(1, Number(a.connections));
/** Per run, not counted: the load runner and the target warm up (JIT, connections). */
const WARMUP_S = a.quick ? 0.25 : 1;
/** Once per target before the first round, so the first round does not meet a cold JIT. */
const FIRST_WARMUP_S = a.quick ? 0.5 : 3;
const TOOL: LoadSpec['tool'] = a.loadgen === 'wrk' || (a.loadgen === 'auto' && onPath('wrk')) ? 'wrk' : 'autocannon';
const M_RATE = Number(a['modest-rate']);
/** Connections for the 1 MiB-body section. */
const BIG_CONN = 8;
const M_CONN = Number(a['modest-connections']);
// Without a delay autocannon's overallRate sends each connection's quota for the second
// back to back and then idles: that measures latency at full concurrency, not at a modest
// rate. A backend delay of connections/rate seconds makes the closed loop run at ~rate, evenly.
const M_DELAY = a['modest-delay-ms'] !== undefined ? Number(a['modest-delay-ms']) : Math.round((M_CONN * 1000) / M_RATE);

/**
 * A run's load figures plus the target process's CPU per request and RSS at the end, and
 * the increase of the target's counter per request (see Target.counter).
 */
type Measured = LoadResult & { cpuUsPerReq?: number; rssMiB?: number; counterPerReq?: number };

/** Targets on features' cost (req/s ratios): [numerator, denominator, at least]. */
const RATE_LIMIT_TARGETS: readonly (readonly [string, string, number])[] = [
  ['switchyard-ratelimit', 'switchyard', 0.95],
  ['switchyard-ratelimit-redis', 'switchyard-ratelimit', 0.8],
  ['switchyard-probes', 'switchyard', 0.97],
  ['switchyard-mirror', 'switchyard', 0.9],
];
/** Variants that measure one feature's cost: compared with `switchyard` only, not with the baselines. */
const isRateLimit = (name: string): boolean => name.startsWith('switchyard-ratelimit') || name === 'switchyard-probes' || name === 'switchyard-mirror';
/** `--targets a,b`: only these rows (and `direct`, the reference of every ratio). */
const ONLY = a.targets?.split(',').map((n) => n.trim()).filter((n) => n !== '');
const wanted = (name: string): boolean => !ONLY || name === 'direct' || ONLY.includes(name);

function spec(t: Target, connections: number, rate = 0, extra: Record<string, string> = {}): LoadSpec {
  const headers = { 'content-type': 'application/json', ...t.headers, ...extra };
  const tool = rate > 0 ? 'autocannon' : TOOL;
  return { tool, url: t.url, method: 'POST', headers, body: BODY, connections, durationS: DURATION, warmupS: WARMUP_S, rate };
}

const T0 = performance.now();
/** A progress line on stderr, stamped with the seconds since the bench started. */
const progress = (s: string): void => { process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${s}\n`); };

function describe(r: LoadResult): string {
  const bad = r.non2xx + r.errors > 0 ? `  (${r.non2xx} non-2xx, ${r.errors} errors)` : '';
  return `${fmt(r.rps, 0)} req/s  p50 ${fmt(r.p50)} ms  p99 ${fmt(r.p99)} ms${bad}`;
}

/** results[name][round]; a round of a target that failed stays undefined. */
type Results = Map<string, (Measured | undefined)[]>;

async function measure(targets: Target[], make: (t: Target) => LoadSpec, logDir: string, label: string): Promise<Results> {
  const res: Results = new Map(targets.map((t) => [t.name, new Array<Measured | undefined>(ROUNDS)]));
  for (let r = 0; r < ROUNDS; r++) {
    // Interleaved, with the order rotated each round so no target always goes first.
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length];
      if (!t) continue;
      try {
        const spec = make(t);
        const count0 = await t.counter?.read().catch(() => NaN);
        const before = procStats(t.pid);
        const out: Measured = await runLoad(spec, logDir);
        const after = procStats(t.pid);
        const count1 = await t.counter?.read().catch(() => NaN);
        // Warm-up requests are served too: counted by the load runner (autocannon), else at the measured rate.
        const served = out.served ?? out.rps * (spec.durationS + spec.warmupS);
        if (before && after) {
          out.cpuUsPerReq = ((after.cpuMs - before.cpuMs) * 1000) / served;
          out.rssMiB = after.rssMiB;
        }
        if (count0 !== undefined && count1 !== undefined) out.counterPerReq = (count1 - count0) / served;
        (res.get(t.name) ?? [])[r] = out;
        progress(`  ${label} round ${r + 1}/${ROUNDS} ${t.name.padEnd(26)} ${describe(out)}`);
      } catch (err) {
        progress(`  ${label} round ${r + 1}/${ROUNDS} ${t.name}: FAILED ${String(err)}`);
      }
    }
  }
  return res;
}

const get = (res: Results, name: string): (LoadResult | undefined)[] => res.get(name) ?? [];
const med = (rs: (Measured | undefined)[], f: (r: Measured) => number): number =>
  median(rs.filter((r): r is Measured => r !== undefined).map(f));
const bad = (rs: (LoadResult | undefined)[]): number => rs.reduce((s, r) => s + (r ? r.non2xx + r.errors : 0), 0);

function throughputReport(res: Results, targets: Target[], switchyards: string[]): string {
  const direct = get(res, 'direct');
  const rows = targets.map((t) => {
    const rs = get(res, t.name);
    return [t.name, fmt(med(rs, (r) => r.rps), 0), fmt(medianPerRound(rs, direct, (x, y) => x.rps / y.rps)),
      fmt(med(rs, (r) => r.p50)), fmt(med(rs, (r) => r.p99)), fmt(medianPerRound(rs, direct, (x, y) => x.p99 / y.p99)),
      fmt(med(rs, (r) => r.cpuUsPerReq ?? NaN), 1), fmt(med(rs, (r) => r.rssMiB ?? NaN), 0), String(bad(rs))];
  });
  const out = [table(['config', 'req/s', 'req/s vs direct', 'p50 ms', 'p99 ms', 'p99 vs direct', 'CPU µs/req', 'RSS MiB', 'non-2xx + errors'], rows)];
  // Each Switchyard (the rate-limited ones aside: they are compared with `switchyard`) against the baselines.
  const pairs: (readonly [string, string, number?])[] = switchyards.filter((n) => !n.includes('@') && !isRateLimit(n))
    .flatMap((s) => ['undici-bare', 'http-proxy', 'nginx'].filter((b) => res.has(b)).map((b) => [s, b] as const));
  if (switchyards.includes('switchyard-jwt') && switchyards.includes('switchyard')) pairs.push(['switchyard-jwt', 'switchyard']);
  for (const [x, y, min] of RATE_LIMIT_TARGETS) if (switchyards.includes(x) && switchyards.includes(y)) pairs.push([x, y, min]);
  for (const base of switchyards.filter((n) => n.includes('@'))) {
    const current = base.slice(0, base.indexOf('@'));
    if (switchyards.includes(current)) pairs.push([current, base]);
  }
  if (pairs.length > 0) {
    const cmp = pairs.map(([s, b, min]) => {
      const [x, y] = [get(res, s), get(res, b)];
      const rps = medianPerRound(x, y, (p, q) => p.rps / q.rps);
      const target = min === undefined ? '' : `req/s ≥ ${min} ${rps >= min ? '✅ met' : '❌ not met'}`;
      return [`${s} / ${b}`, fmt(rps), fmt(medianPerRound(x, y, (p, q) => p.p50 / q.p50)),
        fmt(medianPerRound(x, y, (p, q) => p.p99 / q.p99)), target];
    });
    out.push('', table(['ratio (per round, median)', 'req/s', 'p50', 'p99', 'target'], cmp));
  }
  return out.join('\n');
}

/** Lines under the throughput tables: counters per request, and rate-limited runs that saw refusals. */
function rateLimitNotes(res: Results, targets: Target[]): string[] {
  const out: string[] = [];
  for (const t of targets) {
    const rs = get(res, t.name);
    if (t.counter) {
      out.push(`${t.name}: ${fmt(med(rs, (r) => r.counterPerReq ?? NaN))} ${t.counter.label} per request (median over rounds).`);
    }
    if (isRateLimit(t.name) && bad(rs) > 0) {
      out.push(`${t.name}: ${bad(rs)} non-2xx or errors: the limit refused requests or Redis failed, so its ratio is not the cost of deciding alone.`);
    }
  }
  return out;
}

function modestReport(res: Results, targets: Target[]): string {
  const direct = get(res, 'direct');
  const rows = targets.map((t) => {
    const rs = get(res, t.name);
    return [t.name, fmt(med(rs, (r) => r.rps), 0), fmt(med(rs, (r) => r.p50)), fmt(med(rs, (r) => r.p99)),
      fmt(medianPerRound(rs, direct, (x, y) => x.p50 - y.p50)), fmt(medianPerRound(rs, direct, (x, y) => x.p99 - y.p99)), String(bad(rs))];
  });
  return table(['config', 'req/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'non-2xx + errors'], rows);
}

/** The 1-minute load average: the bench's own processes, and whatever else shares the machine. */
const load1 = (): string => (loadavg()[0] ?? NaN).toFixed(2);

async function main(): Promise<void> {
  installCleanup();
  const loadAtStart = load1();
  const logDir = tempDir();
  const notes: string[] = [];
  try {
    const ports = { backend: await freePort(), bare: await freePort(), hp: await freePort() };
    const backendUrl = `http://127.0.0.1:${ports.backend}`;
    const backend = spawnNode('backend', join(HERE, 'backend.ts'), ['--port', String(ports.backend)], { cpu: CPU_LOAD, logDir });
    // The floor: the bare proxy runs with exactly the V8 flags Switchyard's launcher sets.
    const bare = spawnNode('undici-bare', join(HERE, 'bare-undici-proxy.ts'), ['--port', String(ports.bare), '--target', backendUrl], { cpu: CPU_PROXY, logDir, nodeFlags: V8_FLAGS });
    const hp = spawnNode('http-proxy', join(HERE, 'http-proxy-baseline.ts'), ['--port', String(ports.hp), '--target', backendUrl], { cpu: CPU_PROXY, logDir });
    const targets: Target[] = [
      { name: 'direct', url: `${backendUrl}/score`, headers: {}, pid: backend.child.pid },
      { name: 'undici-bare', url: `http://127.0.0.1:${ports.bare}/score`, headers: {}, pid: bare.child.pid },
    ];
    const procs: Record<string, Proc> = { direct: backend, 'undici-bare': bare, 'http-proxy': hp };
    for (const t of targets) await checkTarget(t, procs[t.name] ?? backend);
    const switchyards: Target[] = [];
    for (const v of SWITCHYARD_VARIANTS) {
      if (!wanted(v.name)) continue;
      if (!existsSync(SWITCHYARD_BIN)) {
        notes.push(`${v.name}: skipped — ${SWITCHYARD_BIN} does not exist yet (the CLI is not there).`);
        continue;
      }
      try {
        switchyards.push(await startSwitchyard(v, backendUrl, logDir));
        progress(`started ${v.name}`);
      } catch (err) {
        notes.push(`${v.name}: skipped — failed to start: ${String(err).split('\n').slice(0, 8).join(' / ')}`);
      }
    }
    const ref = a['baseline-ref'];
    if (ref) {
      const first = SWITCHYARD_VARIANTS[0]!;
      try {
        const bin = join(baselineTree(ref, logDir), 'bin', 'switchyard.mjs');
        switchyards.push(await startSwitchyard(first, backendUrl, logDir, bin, `${first.name}@${ref}`));
      } catch (err) {
        notes.push(`${first.name}@${ref}: skipped — ${String(err).split('\n').slice(0, 4).join(' / ')}`);
      }
    }
    targets.push(...switchyards);
    const hpTarget = { name: 'http-proxy', url: `http://127.0.0.1:${ports.hp}/score`, headers: {}, pid: hp.child.pid };
    await checkTarget(hpTarget, hp);
    targets.push(hpTarget);
    const nginx = await startNginx(backendUrl, logDir).catch((err: unknown) => {
      notes.push(`nginx: skipped — ${String(err).split('\n')[0]}`);
      return undefined;
    });
    if (nginx) targets.push(nginx);
    // `--targets`: the baselines were started (they are cheap) but only the chosen rows run.
    const chosen = targets.filter((t) => wanted(t.name));
    targets.splice(0, targets.length, ...chosen);
    for (const n of notes) progress(`NOTE ${n}`);

    progress(`warm-up: ${FIRST_WARMUP_S} s per target`);
    for (const t of targets) await runLoad({ ...spec(t, CONNECTIONS), durationS: FIRST_WARMUP_S, warmupS: 0 }, logDir);
    progress(`throughput: ${ROUNDS} round(s) x (${WARMUP_S} s warm-up + ${DURATION} s), ${CONNECTIONS} connections, ${TOOL}`);
    const thr = await measure(targets, (t) => spec(t, CONNECTIONS), logDir, 'throughput');

    let workers: string | undefined;
    if (!a['no-workers'] && existsSync(SWITCHYARD_BIN)) {
      progress(`workers: ${a.workers}, ${ROUNDS} round(s), ${CONNECTIONS} connections, gateways unpinned`);
      workers = await workersSection({
        counts: a.workers.split(',').map(Number).filter((n) => n >= 1),
        rounds: ROUNDS, spec: (t) => spec(t, CONNECTIONS), firstWarmupS: FIRST_WARMUP_S, backendUrl, logDir, progress,
      }).catch((err: unknown) => {
        notes.push(`workers: skipped — ${String(err).split('\n').slice(0, 4).join(' / ')}`);
        return undefined;
      });
    }

    const modestTargets = targets.filter((t) => t.name !== 'http-proxy');
    let modest: Results | undefined;
    if (!a['no-modest']) {
      progress(`modest load: ~${M_RATE} req/s, ${M_CONN} connections, backend delay ${M_DELAY} ms`);
      modest = await measure(modestTargets, (t) => spec(t, M_CONN, M_RATE, { 'x-bench-delay-ms': String(M_DELAY) }), logDir, 'modest');
    }

    // Large bodies: 1 MiB uploads (buffered whole by Switchyard, streamed by the bare proxy).
    let big: Results | undefined;
    const bigTargets = targets.filter((t) => t.name === 'direct' || t.name === 'undici-bare' || t.name === 'switchyard' || t.name === 'nginx');
    if (!a['no-big']) {
      progress(`1 MiB bodies: ${BIG_CONN} connections`);
      big = await measure(bigTargets, (t) => ({ ...spec(t, BIG_CONN), bodyBytes: 1_048_576 }), logDir, '1 MiB');
    }

    const steadyTargets = targets.filter((t) => t.name === 'direct' || t.name === 'switchyard');
    const steadyOpts = {
      rounds: ROUNDS, durationS: a.quick ? 1 : Math.max(1, Number(a['steady-duration'])), warmupS: WARMUP_S,
      rate: a['steady-rate'] !== undefined ? Number(a['steady-rate']) : undefined, logDir, progress,
    };
    let steady: string | undefined;
    if (!a['no-steady']) {
      progress(steadyHeading(steadyOpts).replace('### ', ''));
      steady = await steadySection(steadyTargets, steadyOpts);
    }

    let overload: string | undefined;
    if (!a['no-overload']) {
      try {
        overload = await overloadSection({
          rounds: ROUNDS, durationS: DURATION, warmupS: WARMUP_S, firstWarmupS: FIRST_WARMUP_S,
          workers: Math.max(1, Number(a['overload-workers'])),
          serviceMs: Math.max(1, Number(a['overload-service-ms'])),
          queueWaitMs: Math.max(0, Number(a['overload-queue-wait-ms'])),
          factor: Number(a['overload-factor']),
          unloadedFactor: 0.5,
          arrivals: a['overload-arrivals'] === 'uniform' ? 'uniform' : 'poisson',
          logDir,
          progress,
        });
      } catch (err) {
        notes.push(`overload: failed — ${String(err).split('\n').slice(0, 8).join(' / ')}`);
      }
    }

    const out = [
      '## Switchyard bench',
      '',
      `${new Date().toISOString()} · Node ${process.version} · V8 flags (Switchyard and the bare undici proxy alike): ${V8_FLAGS.join(' ') || 'none'} · ${availableParallelism()} CPUs · ` +
        (PIN ? `pinned: proxies CPU ${CPU_PROXY}, backend + load generator CPU ${CPU_LOAD}` : 'not pinned (no taskset or 1 CPU)') +
        ` · ${TOOL} · POST ${BODY.length}-byte JSON · ${ROUNDS} round(s) x ${DURATION} s (after ${WARMUP_S} s warm-up), interleaved; medians over rounds, ratios per round then median` +
        ` · load average (1 min) before the bench ${loadAtStart}, at its end ${load1()}`,
      '',
      `### Throughput (${CONNECTIONS} connections)`,
      '',
      throughputReport(thr, targets, switchyards.filter((s) => wanted(s.name)).map((s) => s.name)),
    ];
    const rlNotes = rateLimitNotes(thr, targets);
    if (rlNotes.length > 0) out.push('', ...rlNotes.map((n) => `- ${n}`));
    if (workers) out.push('', `### Workers (\`serve --workers N\`, ${CONNECTIONS} connections, closed loop)`, '', workers);
    if (modest) {
      out.push('', `### Modest load (~${M_RATE} req/s cap via autocannon overallRate, ${M_CONN} connections, backend answers after ${M_DELAY} ms)`,
        '', modestReport(modest, modestTargets));
    }
    if (steady) out.push('', steadyHeading(steadyOpts), '', steady);
    if (big) out.push('', `### 1 MiB request bodies (${BIG_CONN} connections)`, '', throughputReport(big, bigTargets, ['switchyard']));
    if (overload) out.push('', `### Overload (${a['overload-factor']}x a model's capacity, open loop)`, '', overload);
    if (notes.length > 0) out.push('', ...notes.map((n) => `> ${n}`));
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await killAll();
  }
}

main().catch(async (err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await killAll();
  process.exit(1);
});
