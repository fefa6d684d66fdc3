/**
 * The zero-downtime acceptance test (issue 10), as a script that prints a summary:
 *
 *   npm run test:swap [-- --requests 20000 --connections 16]
 *
 * Part 1: constant closed-loop load (16 keep-alive connections) through a real
 * `switchyard serve --config FILE` process in front of real model servers, while, in
 * sequence: green is added at 0 % with a readiness probe; (a) traffic shifts blue→green in
 * 10 steps by rewriting the file; (b) 10 SIGHUP reloads; (c) a blue instance stops
 * gracefully; (d) a new green instance (cold start) is added; (e) the gateway restarts
 * rolling (a second process on the same ports, then SIGTERM to the first); (f) blue is
 * removed. Target: zero non-2xx responses, zero socket errors.
 *
 * Part 2: one of three instances of a deployment is hard-killed under load: only requests
 * in flight on it may fail, none after it is ejected; how long ejection took.
 *
 * test/integration/swap.test.ts runs the same two functions with assertions.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { freePort, GatewayProcess, get, metric, waitFor, type Exit, type LogLine } from './swap/gateway-process.ts';
import { LoadLoop, percentile, type PhaseStats } from './swap/load.ts';
import { ModelServer } from './swap/model-server.ts';

import { KEY, OUTLIER, PROBE, configYaml, gatewayLog, reloadApplied, scrape, successfulReloads, waitInstanceReady, type Progress } from './swap/scenario.ts';
import { killSummary, killTargetsMet, runHardKill } from './swap/hard-kill.ts';

export { killSummary, runHardKill } from './swap/hard-kill.ts';

// ---------------------------------------------------------------------------------------
// Part 1: swaps, reloads, instance changes and a rolling restart under constant load
// ---------------------------------------------------------------------------------------

export interface SwapOptions {
  /** Keep the load on until at least this many requests were sent. */
  readonly minRequests?: number;
  readonly connections?: number;
  readonly progress?: Progress;
}

export interface SwapResult {
  readonly phases: PhaseStats[];
  readonly connections: number;
  readonly total: { requests: number; ok: number; non2xx: number; errors: number; seconds: number };
  readonly exits: { gateway1: Exit; gateway2: Exit };
  /** Checks beyond the counts (each true when it held), with a word on each. */
  readonly checks: { name: string; ok: boolean; detail: string }[];
  /** Gateway log lines at warn and above, and non-2xx access lines (both processes). */
  readonly gatewayLog: { label: string; line: LogLine }[];
}

export async function runSwapScenario(opts: SwapOptions = {}): Promise<SwapResult> {
  const minRequests = opts.minRequests ?? 20_000;
  const progress = opts.progress ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-swap-'));
  const file = join(dir, 'gateway.yaml');
  const ports = { pub: await freePort(), admin: await freePort() };
  const b1 = await ModelServer.start('blue-1', 'blue');
  const b2 = await ModelServer.start('blue-2', 'blue');
  const g1 = await ModelServer.start('green-1', 'green');
  let g2: ModelServer | undefined;
  const models = [b1, b2, g1];
  const checks: SwapResult['checks'] = [];
  const gateways: GatewayProcess[] = [];
  let load: LoadLoop | undefined;
  const write = (deployments: Record<string, readonly ModelServer[]>, traffic: Record<string, number>) =>
    writeFile(file, configYaml(ports, 'swap', deployments, traffic));

  try {
    await write({ blue: [b1, b2] }, { blue: 100 });
    const gw1 = new GatewayProcess('gateway-1', file, ports);
    gateways.push(gw1);
    await gw1.waitReady();
    await waitInstanceReady(gw1.adminUrl, b1, 1);
    await waitInstanceReady(gw1.adminUrl, b2, 1);
    const gw1Start = metric(await scrape(gw1.adminUrl), 'process_start_time_seconds');
    progress(`gateway-1 (pid ${gw1.pid}) ready on 127.0.0.1:${ports.pub}, admin :${ports.admin}`);

    load = new LoadLoop({ url: gw1.publicUrl, path: '/endpoints/swap/score', key: KEY, connections: opts.connections ?? 16 }, 'warm-up');
    load.start();
    load.current.note = 'blue 100 (2 instances)';
    await sleep(500);

    // Green joins at 0 % with its readiness probe; nothing moves until it is ready.
    let reloads = await successfulReloads(gw1.adminUrl);
    load.phase('green added at 0%').note = 'file edit: green (1 instance, probed) at 0 %; wait until ready';
    await write({ blue: [b1, b2], green: [g1] }, { blue: 100, green: 0 });
    reloads = await reloadApplied(gw1.adminUrl, reloads, 'the reload adding green');
    await waitInstanceReady(gw1.adminUrl, g1, 1);
    await sleep(200);

    // (a) Traffic blue→green in 10 steps, each a rewrite of the file (the watcher reloads it).
    load.phase('(a) shift blue→green').note = '10 file rewrites: 90/10, 80/20 … 0/100, each applied before the next';
    for (let step = 1; step <= 10; step++) {
      await write({ blue: [b1, b2], green: [g1] }, { blue: 100 - 10 * step, green: 10 * step });
      reloads = await reloadApplied(gw1.adminUrl, reloads, `traffic step ${step}`);
      await sleep(100);
    }
    progress('(a) done');

    // (b) 10 SIGHUP reloads. Each rewrites the split first (rolled back to 50/50, then
    // alternating 50/50 and 40/60), so blue is live again for (c); SIGHUP applies it at
    // once (the watcher waits for the file to hold still 0.5 s, and sees it last).
    load.phase('(b) 10 × SIGHUP').note = 'each: rewrite (50/50 ↔ 40/60) + SIGHUP, applied at once';
    for (let i = 0; i < 10; i++) {
      await write({ blue: [b1, b2], green: [g1] }, i % 2 === 0 ? { blue: 50, green: 50 } : { blue: 40, green: 60 });
      gw1.signal('SIGHUP');
      reloads = await reloadApplied(gw1.adminUrl, reloads, `SIGHUP reload ${i + 1}`);
      await sleep(100);
    }
    progress('(b) done');

    // (c) blue-1 stops the Kubernetes way: readiness 503, wait until the gateway has seen it, then close.
    load.phase('(c) blue-1 graceful stop').note = '';
    const stopped = await b1.gracefulStop(() => waitInstanceReady(gw1.adminUrl, b1, 0, 3_000));
    load.current.note = `readiness 503 → gateway unready in ${stopped.unreadyToSeenMs} ms (≤ period × failure_threshold = ${Math.round(PROBE.period * PROBE.failure_threshold * 1000)} ms + one probe); closed after ${stopped.drainMs} ms (${stopped.inFlightAtClose} in flight)`;
    checks.push({
      name: 'no request reached blue-1 after the gateway marked it unready',
      ok: b1.receivedAfterSeen === 0,
      detail: `${b1.receivedAfterSeen} received after`,
    });
    await sleep(300);
    progress('(c) done');

    // (d) A new green instance with a cold start: readiness and /score answer 503 for 0.6 s.
    load.phase('(d) green-2 added').note = 'file edit adding green-2 (cold start 0.6 s: /ready and /score 503 while loading)';
    g2 = await ModelServer.start('green-2', 'green', { coldStartMs: 600 });
    models.push(g2);
    // Read the counter again: the watcher re-applies (b)'s last file once it has held still.
    reloads = await successfulReloads(gw1.adminUrl);
    await write({ blue: [b1, b2], green: [g1, g2] }, { blue: 40, green: 60 });
    reloads = await reloadApplied(gw1.adminUrl, reloads, 'the reload adding green-2');
    await waitInstanceReady(gw1.adminUrl, g2, 1, 5_000);
    const g2ready = g2;
    await waitFor(() => g2ready.served > 20, 'green-2 to serve', 5_000);
    checks.push({
      name: 'green-2 got traffic only once its probe passed',
      ok: g2.refusedCold === 0 && g2.firstScoreAt !== undefined && g2.firstReadyProbeAt !== undefined && g2.firstScoreAt >= g2.firstReadyProbeAt,
      detail: `first probe 200 at +${(g2.firstReadyProbeAt ?? 0) - load.current.startedAt} ms, first /score at +${(g2.firstScoreAt ?? 0) - load.current.startedAt} ms, /score refused while loading: ${g2.refusedCold}`,
    });
    await sleep(300);
    progress('(d) done');

    // (e) Rolling restart: a second process on the same config and ports (reusePort), ready,
    // then SIGTERM to the first, which drains (requests still arriving on its open
    // connections are served with Connection: close) and exits 0.
    load.phase('(e) rolling restart').note = '';
    const gw2 = new GatewayProcess('gateway-2', file, ports, true);
    gateways.push(gw2);
    const t0 = Date.now();
    const newReady = await waitNewProcessReady(gw2, gw1Start, [b2, g1, g2]);
    const readyMs = Date.now() - t0;
    const termAt = Date.now();
    gw1.signal('SIGTERM');
    const exit1 = await gw1.exited;
    load.current.note = `gateway-2 ready ${readyMs} ms after spawn (${newReady}); gateway-1 SIGTERM → exit ${exit1.code ?? exit1.signal} after ${exit1.at - termAt} ms`;
    checks.push({ name: 'the old gateway exited 0 after its drain', ok: exit1.code === 0, detail: `exit ${exit1.code ?? exit1.signal}` });
    await sleep(500);
    progress('(e) done');

    // (f) Finish the swap: all traffic to green and blue removed, in one edit (on gateway-2).
    load.phase('(f) blue removed').note = 'file edit: traffic green 100, blue deployment deleted';
    const reloads2 = await successfulReloads(gw2.adminUrl);
    await write({ green: [g1, g2] }, { green: 100 });
    await reloadApplied(gw2.adminUrl, reloads2, 'the reload removing blue');
    await sleep(300);

    if (load.sent < minRequests) {
      load.phase('tail').note = `load kept on until ${minRequests} requests`;
      await waitFor(() => load!.sent >= minRequests, `${minRequests} requests`, 120_000, 50);
    }
    await load.stop();
    const exit2 = await gw2.stop();
    checks.push({ name: 'the new gateway exited 0 on SIGTERM at the end', ok: exit2.code === 0, detail: `exit ${exit2.code ?? exit2.signal}` });

    const phases = load.phases;
    const sum = (f: (p: PhaseStats) => number) => phases.reduce((a, p) => a + f(p), 0);
    const total = {
      requests: sum((p) => p.requests),
      ok: sum((p) => p.ok),
      non2xx: sum((p) => [...p.statuses.values()].reduce((a, b) => a + b, 0)),
      errors: sum((p) => [...p.errors.values()].reduce((a, b) => a + b, 0)),
      seconds: ((phases.at(-1)?.endedAt ?? 0) - (phases[0]?.startedAt ?? 0)) / 1000,
    };
    return { phases, connections: opts.connections ?? 16, total, exits: { gateway1: exit1, gateway2: exit2 }, checks, gatewayLog: gatewayLog(gateways) };
  } finally {
    if (load) await load.stop().catch(() => {});
    for (const g of gateways) if (g.running) await g.stop(3_000);
    await Promise.all(models.map((m) => m.close()));
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Wait until the new process (not the old one: both answer on the admin port now, the
 * kernel picks per connection) is ready: a scrape on a fresh connection that comes from it
 * (its `process_start_time_seconds` differs from the old one's) shows every live instance
 * ready, and then /readyz answers 200 on 10 fresh connections in a row.
 */
async function waitNewProcessReady(gw: GatewayProcess, oldStart: number | undefined, live: readonly ModelServer[]): Promise<string> {
  let scrapes = 0;
  await waitFor(async () => {
    if (!gw.running) throw new Error(`gateway-2 exited: ${gw.tail()}`);
    const text = await scrape(gw.adminUrl).catch(() => '');
    scrapes++;
    const start = metric(text, 'process_start_time_seconds');
    if (start === undefined || start === oldStart) return false;
    return live.every((m) => metric(text, 'switchyard_instance_ready', { instance: m.url }) === 1);
  }, 'gateway-2 to answer with every instance ready', 15_000, 20);
  let inRow = 0;
  await waitFor(async () => {
    inRow = (await get(`${gw.adminUrl}/readyz`).then((r) => r.status, () => 0)) === 200 ? inRow + 1 : 0;
    return inRow >= 10;
  }, 'gateway-2 /readyz', 5_000, 5);
  return `${scrapes} scrapes to reach it on the shared admin port`;
}

// ---------------------------------------------------------------------------------------
// Summary
// ---------------------------------------------------------------------------------------

const fmtMap = (m: ReadonlyMap<string | number, number>): string => (m.size === 0 ? '0' : [...m].map(([k, v]) => `${v} × ${k}`).join(', '));

export function swapSummary(r: SwapResult): string {
  const rows = r.phases.map((p) => {
    const secs = ((p.endedAt || Date.now()) - p.startedAt) / 1000;
    const non2xx = [...p.statuses.values()].reduce((a, b) => a + b, 0);
    const errs = [...p.errors.values()].reduce((a, b) => a + b, 0);
    const blue = p.byDeployment.get('blue') ?? 0;
    const green = p.byDeployment.get('green') ?? 0;
    const split = p.ok > 0 ? `${Math.round((100 * blue) / p.ok)} / ${Math.round((100 * green) / p.ok)}` : '–';
    const inst = [...p.byInstance].sort().map(([k, v]) => `${k.replace('blue-', 'b').replace('green-', 'g')}:${v}`).join(' ');
    return `| ${p.name} | ${p.note} | ${secs.toFixed(1)} | ${p.requests} | ${p.ok} | ${non2xx === 0 ? 0 : fmtMap(p.statuses)} | ${errs === 0 ? 0 : fmtMap(p.errors)} | ${split} | ${inst} | ${percentile(p.latencies, 99).toFixed(1)} |`;
  });
  const t = r.total;
  const lines = [
    '### Swaps, reloads and a rolling restart under constant load',
    '',
    `Closed-loop load from an undici Pool of ${r.connections} keep-alive connections → \`switchyard serve --config FILE\` (a child process) → in-process model servers. Readiness probe on every deployment: \`${JSON.stringify(PROBE)}\`; outlier detection \`${JSON.stringify(OUTLIER)}\`. A request counts in the phase in which it was sent.`,
    '',
    '| phase | what happened | s | requests | 2xx | non-2xx | socket errors | blue / green % | by instance | p99 ms |',
    '|---|---|---:|---:|---:|---|---|---|---|---:|',
    ...rows,
    `| **total** | | ${t.seconds.toFixed(1)} | **${t.requests}** | **${t.ok}** | **${t.non2xx}** | **${t.errors}** | | | |`,
    '',
    'The graceful stop in (c) is the one Kubernetes does with readiness probes: the server first answers its readiness path with 503, waits until the gateway has seen it (probe period × failure_threshold; here the test watches `switchyard_instance_ready`), and only then stops accepting and closes once its in-flight requests finished.',
    '',
    ...r.checks.map((c) => `- ${c.ok ? '✔' : '✘'} ${c.name} (${c.detail})`),
    `- ${t.requests >= 20_000 ? '✔' : '✘'} at least 20,000 requests (${t.requests})`,
    `- ${t.non2xx === 0 && t.errors === 0 ? '✔' : '✘'} zero non-2xx responses and zero socket errors (${t.non2xx} non-2xx, ${t.errors} errors)`,
  ];
  return lines.join('\n');
}

export function swapTargetsMet(s: SwapResult, minRequests = 20_000): boolean {
  return s.total.requests >= minRequests && s.total.non2xx === 0 && s.total.errors === 0 && s.checks.every((c) => c.ok);
}

function logExcerpt(entries: { label: string; line: LogLine }[], max = 30): string {
  if (entries.length === 0) return '';
  // The same message from the same process once, with a count (reloads repeat their warnings).
  const seen = new Map<string, { text: string; n: number }>();
  for (const { label, line } of entries) {
    const key = line.msg === 'request' ? `${label}\0${JSON.stringify({ ...line, time: 0, request_id: '', duration_ms: 0 })}` : `${label}\0${line.msg}\0${String(line.instance ?? '')}`;
    const e = seen.get(key);
    if (e) e.n++;
    else seen.set(key, { text: `${label}: ${JSON.stringify(line)}`, n: 1 });
  }
  const shown = [...seen.values()].slice(0, max).map((e) => (e.n > 1 ? `${e.text} (×${e.n})` : e.text));
  return ['', '<details><summary>gateway log: lines at warn and above, non-2xx access lines (repeats counted)</summary>', '', '```', ...shown, seen.size > max ? `… ${seen.size - max} more` : '', '```', '</details>'].join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({ options: {
    requests: { type: 'string', default: '20000' },
    connections: { type: 'string', default: '16' },
    only: { type: 'string' },
  } });
  const minRequests = Number(values.requests);
  const connections = Number(values.connections);
  const progress = (m: string) => process.stderr.write(`swap: ${m}\n`);
  let ok = true;
  if (values.only !== 'kill') {
    const swap = await runSwapScenario({ minRequests, connections, progress });
    process.stdout.write(`${swapSummary(swap)}\n${logExcerpt(swap.gatewayLog)}\n\n`);
    ok &&= swapTargetsMet(swap, minRequests);
  }
  if (values.only !== 'swap') {
    const kill = await runHardKill({ connections, progress });
    process.stdout.write(`${killSummary(kill)}\n${logExcerpt(kill.gatewayLog)}\n`);
    ok &&= killTargetsMet(kill);
  }
  process.stdout.write(`\n**${ok ? 'All targets met.' : 'Targets NOT met.'}**\n`);
  process.exitCode = ok ? 0 : 1;
}
