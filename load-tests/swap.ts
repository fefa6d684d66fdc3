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
import { stringify } from 'yaml';
import { freePort, GatewayProcess, get, metric, waitFor, type Exit, type LogLine } from './swap/gateway-process.ts';
import { LoadLoop, percentile, type PhaseStats, type RequestRecord } from './swap/load.ts';
import { ModelProcess } from './swap/model-process.ts';
import { ModelServer } from './swap/model-server.ts';

const KEY = 'swap-test-key-0123456789abcdef';
/** Readiness probe on every deployment: every 0.1 s, unready after 3 failures (0.3 s). */
export const PROBE = { path: '/ready', initial_delay: 0, period: 0.1, timeout: 1, success_threshold: 1, failure_threshold: 3 };
export const OUTLIER = { consecutive_failures: 3, base_ejection_time_s: 30, max_ejection_percent: 50 };
/** Well above the load's connections: the per-instance cap (default 16, with a queue) never binds. */
const REQUEST_SETTINGS = { request_timeout_ms: 5000, max_concurrent_requests_per_instance: 64, max_queue_wait_ms: 2000 };

type Progress = (msg: string) => void;

/** What the config and the checks need of a model server (in this process or its own). */
interface Model {
  readonly name: string;
  readonly url: string;
}

interface Ports {
  readonly pub: number;
  readonly admin: number;
}

/** The gateway's config file: one endpoint, the given deployments and split (YAML). */
function configYaml(ports: Ports, endpoint: string, deployments: Record<string, readonly Model[]>, traffic: Record<string, number>): string {
  const deps: Record<string, unknown> = {};
  for (const [name, instances] of Object.entries(deployments)) {
    deps[name] = {
      instances: instances.map((m) => m.url),
      scoring_route: '/score',
      request_settings: REQUEST_SETTINGS,
      readiness_probe: PROBE,
      outlier_detection: OUTLIER,
    };
  }
  return stringify({
    server: {
      listen: { host: '127.0.0.1', port: ports.pub },
      admin_listen: { host: '127.0.0.1', port: ports.admin },
      shutdown_grace_ms: 10_000,
    },
    endpoints: { [endpoint]: { keys: { primary: KEY }, traffic, deployments: deps } },
  });
}

async function scrape(adminUrl: string): Promise<string> {
  return (await get(`${adminUrl}/metrics`)).body;
}

async function successfulReloads(adminUrl: string): Promise<number> {
  return metric(await scrape(adminUrl), 'switchyard_config_reloads_total', { result: 'success' }) ?? 0;
}

/** The gateway (the only process on the admin port) has applied one more config than `before`. */
async function reloadApplied(adminUrl: string, before: number, what: string): Promise<number> {
  let now = before;
  await waitFor(async () => (now = await successfulReloads(adminUrl)) > before, what, 5_000, 15);
  return now;
}

async function instanceReady(adminUrl: string, m: Model): Promise<number | undefined> {
  return metric(await scrape(adminUrl), 'switchyard_instance_ready', { instance: m.url });
}

async function waitInstanceReady(adminUrl: string, m: Model, value: 0 | 1, timeoutMs = 5_000): Promise<void> {
  await waitFor(async () => (await instanceReady(adminUrl, m)) === value, `${m.name} instance_ready=${value}`, timeoutMs, 10);
}

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

function gatewayLog(gateways: readonly GatewayProcess[]): { label: string; line: LogLine }[] {
  const out: { label: string; line: LogLine }[] = [];
  for (const g of gateways) {
    for (const line of g.lines) if ((line.level ?? 0) >= 40 || line.msg === 'stderr') out.push({ label: g.label, line });
    for (const line of g.badAccess) out.push({ label: g.label, line });
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Part 2: one of three instances hard-killed under load
// ---------------------------------------------------------------------------------------

export interface KillOptions {
  readonly connections?: number;
  /** Load before and after the kill (ms). */
  readonly beforeMs?: number;
  readonly afterMs?: number;
  /** Requests per second (paced, so the gateway is not saturated and sees the kill at once). */
  readonly rate?: number;
  readonly progress?: Progress;
}

export interface KillResult {
  readonly requests: number;
  readonly ok: number;
  /** Requests that got a non-2xx answer or a socket error. */
  readonly failed: RequestRecord[];
  /** Requests in flight on the killed instance at the kill: it had received them and not answered. */
  readonly inFlightAtKill: number;
  /**
   * Failed requests by what happened to them: in flight on the killed instance (it had
   * received them and not answered); on their way to it at the kill (sent before it, received
   * by no instance); sent to it after the kill but before the gateway ejected it (the gateway
   * had not yet read the connection closes: received by no instance, sent between the kill
   * and the ejection); anything else (received by a surviving instance, or sent after the
   * ejection) — the last must be none.
   */
  readonly failedInFlight: number;
  readonly failedInTransit: number;
  readonly failedBeforeEjection: number;
  readonly failedOther: number;
  /** The load's connections (nothing can have more requests in flight) and its pace. */
  readonly connections: number;
  readonly rate: number;
  /** Failed requests sent after the kill, and after the ejection. */
  readonly failedSentAfterKill: number;
  readonly failedSentAfterEjection: number;
  /** Milliseconds from the kill to: the ejection (the gateway's log line), the counter seen by a 10 ms scrape loop, the last failed response, the readiness probe marking it unready. */
  readonly ejectionMs: number | undefined;
  readonly ejectionCounterSeenMs: number | undefined;
  readonly lastFailureMs: number | undefined;
  readonly unreadyMs: number | undefined;
  /** Requests the killed instance served before the kill; 2xx served by each survivor after. */
  readonly servedByKilled: number;
  readonly afterKillByInstance: Record<string, number>;
  readonly statuses: Record<string, number>;
  readonly exit: Exit;
  readonly gatewayLog: { label: string; line: LogLine }[];
}

export async function runHardKill(opts: KillOptions = {}): Promise<KillResult> {
  const progress = opts.progress ?? (() => {});
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-kill-'));
  const file = join(dir, 'gateway.yaml');
  const ports = { pub: await freePort(), admin: await freePort() };
  // Each instance its own process (the kill is a real SIGKILL), a few ms per answer so that
  // requests are in flight on every instance when one dies.
  const models = await Promise.all(['blue-1', 'blue-2', 'blue-3'].map((n) => ModelProcess.start(n, 'blue', 3, join(dir, `${n}.json`))));
  const [victim, ...survivors] = models as [ModelProcess, ...ModelProcess[]];
  let gw: GatewayProcess | undefined;
  let load: LoadLoop | undefined;
  try {
    await writeFile(file, configYaml(ports, 'kill', { blue: models }, { blue: 100 }));
    gw = new GatewayProcess('gateway-kill', file, ports);
    await gw.waitReady();
    for (const m of models) await waitInstanceReady(gw.adminUrl, m, 1);
    progress(`gateway (pid ${gw.pid}) ready; 3 instances`);
    load = new LoadLoop({ url: gw.publicUrl, path: '/endpoints/kill/score', key: KEY, connections: opts.connections ?? 16, keepRecords: true, rate: opts.rate ?? 1500 }, 'before the kill');
    load.start();
    await sleep(opts.beforeMs ?? 1_000);

    // Scrape every 10 ms from the kill on, to see when the ejection counter moves.
    let counterSeenAt: number | undefined;
    const adminUrl = gw.adminUrl;
    let watching = true;
    const watcher = (async () => {
      while (watching && counterSeenAt === undefined) {
        const text = await scrape(adminUrl).catch(() => '');
        if ((metric(text, 'switchyard_instance_ejections_total', { instance: victim.url }) ?? 0) >= 1) counterSeenAt = Date.now();
        await sleep(10);
      }
    })();
    load.phase('after the kill');
    const kill = await victim.kill();
    progress(`killed ${victim.name} (SIGKILL) with ${kill.inFlight.length} requests in flight on it`);
    await sleep(opts.afterMs ?? 1_500);
    await load.stop();
    watching = false;
    await watcher;
    const seenBySurvivors = new Set((await Promise.all(survivors.map((m) => m.report()))).flatMap((r) => r.received));

    const g = gw;
    const ejected = await g.waitForLine((l) => l.msg === 'instance ejected after consecutive failures' && l.instance === victim.url, 'the ejection', 3_000).catch(() => undefined);
    const unready = await g.waitForLine((l) => l.msg === 'instance failed its readiness probe' && l.instance === victim.url, 'the failed probe', 3_000).catch(() => undefined);
    const exit = await g.stop();

    const records = load.records;
    const failed = records.filter((r) => r.status < 200 || r.status > 299);
    const inFlight = new Set(kill.inFlight);
    const seenByVictim = new Set(kill.received);
    const ejectedAt = typeof ejected?.time === 'number' ? ejected.time : undefined;
    const statuses: Record<string, number> = {};
    for (const r of failed) statuses[r.error ?? String(r.status)] = (statuses[r.error ?? String(r.status)] ?? 0) + 1;
    const afterKillByInstance: Record<string, number> = {};
    for (const r of records) {
      if (r.sentAt <= kill.at || r.status < 200 || r.status > 299) continue;
      afterKillByInstance[r.instance ?? '?'] = (afterKillByInstance[r.instance ?? '?'] ?? 0) + 1;
    }
    const lastFailure = failed.reduce((a, r) => Math.max(a, r.endAt), 0);
    const kinds = { inFlight: 0, inTransit: 0, beforeEjection: 0, other: 0 };
    for (const r of failed) {
      const seq = String(r.seq);
      if (inFlight.has(seq)) kinds.inFlight++;
      else if (seenByVictim.has(seq) || seenBySurvivors.has(seq)) kinds.other++;
      else if (r.sentAt <= kill.at) kinds.inTransit++;
      else if (ejectedAt !== undefined && r.sentAt <= ejectedAt) kinds.beforeEjection++;
      else kinds.other++;
    }
    return {
      requests: records.length,
      ok: records.length - failed.length,
      failed,
      inFlightAtKill: kill.inFlight.length,
      failedInFlight: kinds.inFlight,
      failedInTransit: kinds.inTransit,
      failedBeforeEjection: kinds.beforeEjection,
      failedOther: kinds.other,
      connections: opts.connections ?? 16,
      rate: opts.rate ?? 1500,
      failedSentAfterKill: failed.filter((r) => r.sentAt > kill.at).length,
      failedSentAfterEjection: ejectedAt === undefined ? failed.length : failed.filter((r) => r.sentAt > ejectedAt).length,
      ejectionMs: ejectedAt !== undefined ? ejectedAt - kill.at : undefined,
      ejectionCounterSeenMs: counterSeenAt !== undefined ? counterSeenAt - kill.at : undefined,
      lastFailureMs: failed.length > 0 ? lastFailure - kill.at : undefined,
      unreadyMs: typeof unready?.time === 'number' ? unready.time - kill.at : undefined,
      servedByKilled: kill.served,
      afterKillByInstance,
      statuses,
      exit,
      gatewayLog: gatewayLog([g]),
    };
  } finally {
    if (load) await load.stop().catch(() => {});
    if (gw?.running) await gw.stop(3_000);
    await Promise.all(models.map((m) => m.close()));
    await rm(dir, { recursive: true, force: true });
  }
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

export function killSummary(r: KillResult): string {
  const ms = (v: number | undefined) => (v === undefined ? 'n/a' : `${v} ms`);
  const survivors = Object.entries(r.afterKillByInstance).sort().map(([k, v]) => `${k}: ${v}`).join(', ');
  return [
    '### One of three instances hard-killed under load',
    '',
    `Deployment \`blue\` with 3 instances, each its own process (3 ms per answer), readiness probe and outlier detection as above; ${r.connections} keep-alive connections paced at ${r.rate} req/s; after 1 s \`blue-1\` is SIGKILLed (no readiness 503 first): the kernel closes its connections and refuses new ones. Just before (same tick) it writes down what it had received and not answered.`,
    '',
    '| measure | value |',
    '|---|---:|',
    `| requests (before + after the kill) | ${r.requests} |`,
    `| 2xx | ${r.ok} |`,
    `| requests blue-1 had received and not answered at the kill | ${r.inFlightAtKill} |`,
    `| blue-1 served before the kill | ${r.servedByKilled} |`,
    `| failed requests (non-2xx or socket error) | ${r.failed.length}${r.failed.length ? ` (${Object.entries(r.statuses).map(([k, v]) => `${v} × ${k}`).join(', ')})` : ''} |`,
    `| … in flight on blue-1 at the kill, received by it | ${r.failedInFlight} |`,
    `| … in flight to blue-1 at the kill, not read by it yet (sent before the kill, received by no instance) | ${r.failedInTransit} |`,
    `| … sent to blue-1 after the kill, before the gateway noticed and ejected it (received by no instance) | ${r.failedBeforeEjection} |`,
    `| … any other (received by a survivor, or sent after the ejection) | ${r.failedOther} |`,
    `| failed requests sent after the kill / after the ejection | ${r.failedSentAfterKill} / ${r.failedSentAfterEjection} |`,
    `| kill → ejection (gateway log line \`instance ejected\`) | ${ms(r.ejectionMs)} |`,
    `| kill → \`switchyard_instance_ejections_total\` seen by a 10 ms scrape loop | ${ms(r.ejectionCounterSeenMs)} |`,
    `| kill → last failed response | ${ms(r.lastFailureMs)} |`,
    `| kill → readiness probe marks it unready (period 0.1 s × 3) | ${ms(r.unreadyMs)} |`,
    `| 2xx after the kill, by instance | ${survivors} |`,
    `| gateway exit on SIGTERM | ${r.exit.code ?? r.exit.signal} |`,
    '',
    `- ${r.failedOther === 0 ? '✔' : '✘'} every failed request was one the gateway had sent to blue-1 before ejecting it (${r.failedInFlight} in flight on it, ${r.failedInTransit} on their way to it, ${r.failedBeforeEjection} sent to it after the kill before the ejection; ${r.failedOther} other)`,
    `- ${r.failedSentAfterEjection === 0 ? '✔' : '✘'} none sent after the ejection failed`,
    `- ${r.failed.length <= r.connections ? '✔' : '✘'} at most one request per load connection failed (${r.failed.length} ≤ ${r.connections})`,
  ].join('\n');
}

/** Part 1's targets: enough requests, none failed, every check held. */
export function swapTargetsMet(s: SwapResult, minRequests = 20_000): boolean {
  return s.total.requests >= minRequests && s.total.non2xx === 0 && s.total.errors === 0 && s.checks.every((c) => c.ok);
}

/** Part 2's targets: only requests the gateway had sent to the killed instance before ejecting it failed; none after. */
export function killTargetsMet(k: KillResult): boolean {
  return k.failedOther === 0 && k.failedSentAfterEjection === 0 && k.failed.length <= k.connections && k.ejectionMs !== undefined;
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
