/** Part 2 of the swap test: one of three instances hard-killed under load (see load-tests/swap.ts). */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, GatewayProcess, metric, type Exit, type LogLine } from './gateway-process.ts';
import { LoadLoop, type RequestRecord } from './load.ts';
import { ModelProcess } from './model-process.ts';

import { KEY, configYaml, gatewayLog, scrape, waitInstanceReady, type Progress } from './scenario.ts';

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

/** Part 2's targets: only requests the gateway had sent to the killed instance before ejecting it failed; none after. */
export function killTargetsMet(k: KillResult): boolean {
  return k.failedOther === 0 && k.failedSentAfterEjection === 0 && k.failed.length <= k.connections && k.ejectionMs !== undefined;
}
