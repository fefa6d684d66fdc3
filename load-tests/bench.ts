/**
 * `npm run bench`: Switchyard side by side with a direct call, a bare undici proxy and
 * http-proxy — same backend, same load generator, configurations interleaved and repeated,
 * medians over rounds, ratios taken per round then medianed (method of
 * shared/research/proxy-baseline.md). Then a modest-load section: added p50/p99 over direct.
 *
 *   node load-tests/bench.ts [--rounds 3] [--duration 5] [--connections 64] [--quick]
 *                            [--loadgen auto|autocannon|wrk] [--modest-rate 1000]
 *                            [--modest-connections 10] [--modest-delay-ms N] [--no-modest]
 *                            [--baseline-ref GIT_REF] [--no-big]
 *
 * `--baseline-ref main~3` also runs Switchyard as it was at that commit (a temporary git
 * worktree sharing this node_modules), interleaved with the rest, and reports
 * `switchyard / switchyard@REF`: a before/after comparison in one run.
 *
 * Markdown goes to stdout, progress to stderr. Every child process is killed at the end.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
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
  },
});
const ROUNDS = a.quick ? 1 : Math.max(1, Number(a.rounds));
const DURATION = a.quick ? 2 : Math.max(1, Number(a.duration));
const CONNECTIONS = Math.max(1, Number(a.connections));
/** Per run, not counted: the load runner and the target warm up (JIT, connections). */
const WARMUP_S = a.quick ? 0.5 : 1;
/** Once per target before the first round, so the first round does not meet a cold JIT. */
const FIRST_WARMUP_S = a.quick ? 1 : 3;
const TOOL: LoadSpec['tool'] = a.loadgen === 'wrk' || (a.loadgen === 'auto' && onPath('wrk')) ? 'wrk' : 'autocannon';
const M_RATE = Number(a['modest-rate']);
/** Connections for the 1 MiB-body section. */
const BIG_CONN = 8;
const M_CONN = Number(a['modest-connections']);
// Without a delay autocannon's overallRate sends each connection's quota for the second
// back to back and then idles: that measures latency at full concurrency, not at a modest
// rate. A backend delay of connections/rate seconds makes the closed loop run at ~rate, evenly.
const M_DELAY = a['modest-delay-ms'] !== undefined ? Number(a['modest-delay-ms']) : Math.round((M_CONN * 1000) / M_RATE);

/** A run's load figures plus the target process's CPU per request and RSS at the end. */
type Measured = LoadResult & { cpuUsPerReq?: number; rssMiB?: number };

function spec(t: Target, connections: number, rate = 0, extra: Record<string, string> = {}): LoadSpec {
  const headers = { 'content-type': 'application/json', ...t.headers, ...extra };
  const tool = rate > 0 ? 'autocannon' : TOOL;
  return { tool, url: t.url, method: 'POST', headers, body: BODY, connections, durationS: DURATION, warmupS: WARMUP_S, rate };
}

const progress = (s: string): void => { process.stderr.write(s + '\n'); };

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
        const before = procStats(t.pid);
        const out: Measured = await runLoad(spec, logDir);
        const after = procStats(t.pid);
        if (before && after) {
          // Warm-up requests are served too: count them at the measured rate.
          out.cpuUsPerReq = ((after.cpuMs - before.cpuMs) * 1000) / (out.rps * (spec.durationS + spec.warmupS));
          out.rssMiB = after.rssMiB;
        }
        (res.get(t.name) ?? [])[r] = out;
        progress(`  ${label} round ${r + 1}/${ROUNDS} ${t.name.padEnd(15)} ${describe(out)}`);
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
  const pairs: (readonly [string, string])[] = switchyards.filter((n) => !n.includes('@'))
    .flatMap((s) => ['undici-bare', 'http-proxy', 'nginx'].filter((b) => res.has(b)).map((b) => [s, b] as const));
  if (switchyards.includes('switchyard-jwt') && switchyards.includes('switchyard')) pairs.push(['switchyard-jwt', 'switchyard']);
  for (const base of switchyards.filter((n) => n.includes('@'))) {
    const current = base.slice(0, base.indexOf('@'));
    if (switchyards.includes(current)) pairs.push([current, base]);
  }
  if (pairs.length > 0) {
    const cmp = pairs.map(([s, b]) => {
      const [x, y] = [get(res, s), get(res, b)];
      return [`${s} / ${b}`, fmt(medianPerRound(x, y, (p, q) => p.rps / q.rps)),
        fmt(medianPerRound(x, y, (p, q) => p.p50 / q.p50)), fmt(medianPerRound(x, y, (p, q) => p.p99 / q.p99))];
    });
    out.push('', table(['ratio (per round, median)', 'req/s', 'p50', 'p99'], cmp));
  }
  return out.join('\n');
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

async function main(): Promise<void> {
  installCleanup();
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
      if (!existsSync(SWITCHYARD_BIN)) {
        notes.push(`${v.name}: skipped — ${SWITCHYARD_BIN} does not exist yet (the CLI is not there).`);
        continue;
      }
      try {
        switchyards.push(await startSwitchyard(v, backendUrl, logDir));
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
    for (const n of notes) progress(`NOTE ${n}`);

    progress(`warm-up: ${FIRST_WARMUP_S} s per target`);
    for (const t of targets) await runLoad({ ...spec(t, CONNECTIONS), durationS: FIRST_WARMUP_S, warmupS: 0 }, logDir);
    progress(`throughput: ${ROUNDS} round(s) x (${WARMUP_S} s warm-up + ${DURATION} s), ${CONNECTIONS} connections, ${TOOL}`);
    const thr = await measure(targets, (t) => spec(t, CONNECTIONS), logDir, 'throughput');

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

    const out = [
      '## Switchyard bench',
      '',
      `${new Date().toISOString()} · Node ${process.version} · V8 flags (Switchyard and the bare undici proxy alike): ${V8_FLAGS.join(' ') || 'none'} · ${availableParallelism()} CPUs · ` +
        (PIN ? `pinned: proxies CPU ${CPU_PROXY}, backend + load generator CPU ${CPU_LOAD}` : 'not pinned (no taskset or 1 CPU)') +
        ` · ${TOOL} · POST ${BODY.length}-byte JSON · ${ROUNDS} round(s) x ${DURATION} s (after ${WARMUP_S} s warm-up), interleaved; medians over rounds, ratios per round then median`,
      '',
      `### Throughput (${CONNECTIONS} connections)`,
      '',
      throughputReport(thr, targets, switchyards.map((s) => s.name)),
    ];
    if (modest) {
      out.push('', `### Modest load (~${M_RATE} req/s cap via autocannon overallRate, ${M_CONN} connections, backend answers after ${M_DELAY} ms)`,
        '', modestReport(modest, modestTargets));
    }
    if (big) out.push('', `### 1 MiB request bodies (${BIG_CONN} connections)`, '', throughputReport(big, bigTargets, ['switchyard']));
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
