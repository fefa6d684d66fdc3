/**
 * A rolling restart seen by clients that open a new connection for every request (no
 * keep-alive: HTTP/1.0 clients, scripts, some load balancers), which the keep-alive load of
 * `npm run test:swap` does not exercise. Two things show up here:
 *
 * - The new process binds the shared port (reusePort) before its instances are ready: the
 *   kernel gives it about half of the new connections at once, and while its probes wait
 *   out `initial_delay` those requests wait `max_queue_wait_ms` and get 503 NoReadyInstance.
 * - When the old process closes its listener, connections the kernel had already queued on
 *   it (accepted by TCP, not yet by Node) are reset: ECONNRESET, unless the kernel migrates
 *   them (Linux ≥ 5.14, `net.ipv4.tcp_migrate_req = 1`).
 *
 *   node load-tests/swap/restart-churn.ts [--initial-delay 2] [--runs 3]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { freePort, GatewayProcess, get, metric, waitFor } from './gateway-process.ts';
import { ModelServer } from './model-server.ts';

const KEY = 'churn-test-key-0123456789abcdef';

type Counts = Map<string, number>;

/** One POST on a new connection; the status or the error code is counted. */
function once(port: number, counts: Counts): Promise<void> {
  const bump = (k: string) => counts.set(k, (counts.get(k) ?? 0) + 1);
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1', port, path: '/endpoints/churn/score', method: 'POST', agent: false,
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    }, (res) => {
      res.resume();
      res.on('end', () => { bump(String(res.statusCode)); resolve(); });
      res.on('error', (e: NodeJS.ErrnoException) => { bump(e.code ?? 'error'); resolve(); });
    });
    req.on('error', (e: NodeJS.ErrnoException) => { bump(e.code ?? 'error'); resolve(); });
    req.end('{}');
  });
}

export interface ChurnStage {
  readonly name: string;
  readonly ms: number;
  readonly counts: Counts;
}

export async function runRestartChurn(initialDelayS: number, workers = 8): Promise<ChurnStage[]> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-churn-'));
  const file = join(dir, 'gateway.yaml');
  const ports = { pub: await freePort(), admin: await freePort() };
  const model = await ModelServer.start('blue-1', 'blue');
  const gateways: GatewayProcess[] = [];
  await writeFile(file, stringify({
    server: { listen: { host: '127.0.0.1', port: ports.pub }, admin_listen: { host: '127.0.0.1', port: ports.admin } },
    endpoints: {
      churn: {
        keys: { primary: KEY },
        traffic: { blue: 100 },
        deployments: { blue: { instances: [model.url], readiness_probe: { path: '/ready', period: 0.1, initial_delay: initialDelayS } } },
      },
    },
  }));
  const stages: ChurnStage[] = [];
  let counts: Counts = new Map();
  let stageStart = Date.now();
  const next = (name: string) => {
    stages.push({ name, ms: Date.now() - stageStart, counts });
    counts = new Map();
    stageStart = Date.now();
  };
  let stop = false;
  let load: Promise<void[]> | undefined;
  try {
    const gw1 = new GatewayProcess('gateway-1', file, ports);
    gateways.push(gw1);
    await gw1.waitReady();
    await waitFor(async () => metric((await get(`${gw1.adminUrl}/metrics`)).body, 'switchyard_instance_ready', { instance: model.url }) === 1, 'blue-1 ready', 5_000 + initialDelayS * 1000);
    const oldStart = metric((await get(`${gw1.adminUrl}/metrics`)).body, 'process_start_time_seconds');
    load = Promise.all(Array.from({ length: workers }, async () => { while (!stop) await once(ports.pub, counts); }));
    await sleep(500);
    next('one process');

    const gw2 = new GatewayProcess('gateway-2', file, ports, true);
    gateways.push(gw2);
    // Its admin listener is bound last: once it answers there, every listener is bound.
    await waitFor(async () => {
      const text = await get(`${gw2.adminUrl}/metrics`).then((r) => r.body, () => '');
      const start = metric(text, 'process_start_time_seconds');
      return start !== undefined && start !== oldStart;
    }, 'gateway-2 to listen', 15_000);
    next('new process starting');
    await sleep(initialDelayS * 1000 + 500);
    next(`both listening (${initialDelayS * 1000 + 500} ms)`);
    gw1.signal('SIGTERM');
    const exit = await gw1.exited;
    next(`old process draining (exit ${exit.code ?? exit.signal})`);
    await sleep(500);
    next('new process alone');
    return stages;
  } finally {
    stop = true;
    await load;
    for (const g of gateways) if (g.running) await g.stop(3_000);
    await model.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export function churnTable(runs: ChurnStage[][]): string {
  const rows: string[] = ['| run | stage | ms | requests | 2xx | other statuses | socket errors |', '|---:|---|---:|---:|---:|---|---|'];
  runs.forEach((stages, i) => {
    for (const s of stages) {
      let n = 0;
      let ok = 0;
      const bad: string[] = [];
      const errs: string[] = [];
      for (const [k, v] of s.counts) {
        n += v;
        if (/^2\d\d$/.test(k)) ok += v;
        else (/^\d+$/.test(k) ? bad : errs).push(`${v} × ${k}`);
      }
      rows.push(`| ${i + 1} | ${s.name} | ${s.ms} | ${n} | ${ok} | ${bad.join(', ') || 0} | ${errs.join(', ') || 0} |`);
    }
  });
  return rows.join('\n');
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { 'initial-delay': { type: 'string', default: '0' }, runs: { type: 'string', default: '3' } } });
  const migrate = await readFile('/proc/sys/net/ipv4/tcp_migrate_req', 'utf8').then((s) => s.trim(), () => 'n/a');
  const runs: ChurnStage[][] = [];
  for (let i = 0; i < Number(values.runs); i++) runs.push(await runRestartChurn(Number(values['initial-delay'])));
  process.stdout.write(`Rolling restart, 8 clients each opening a new connection per request; readiness_probe initial_delay ${values['initial-delay']} s; net.ipv4.tcp_migrate_req = ${migrate}\n\n${churnTable(runs)}\n`);
}
