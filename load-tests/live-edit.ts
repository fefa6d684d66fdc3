/**
 * Issue 12's performance check: an edit through the admin API under load, on two replicas
 * sharing one Redis. Two `switchyard serve` processes (replicas A and B, one config file
 * each, the same endpoint and `state.redis_url`), a redis-server and a backend this script
 * starts; constant open-loop load (k6's constant-arrival-rate: arrivals evenly spaced, a slow
 * answer does not delay the next one) through both replicas for the whole run.
 *
 * `--edits` rounds, each of three periods of `--gap-ms` under the same load:
 *
 *   quiet:  nothing changes (the reference);
 *   reload: both config files rewritten (write + rename, as a ConfigMap update does), the
 *           watcher reloads each replica — a plain config-file reload;
 *   edit:   `PATCH /admin/endpoints/live {"traffic": ...}` on A, which B must pick up from Redis.
 *
 * The three kinds interleave round by round (as the bench interleaves its targets), so a
 * burst of load from elsewhere on the machine lands on all three alike instead of on
 * whichever window it happened to coincide with. Each change moves all traffic to the other
 * deployment (100/0 ↔ 0/100), so every answer says which config served it
 * (`azureml-model-deployment`, SPEC §3). A reload also toggles a field the edits never touch
 * (`request_timeout_ms`), so the file's endpoint always changes and the file wins over the
 * API edit before it (the precedence rule), as it would in production.
 *
 * For each change and replica, the change is "served" from the first request answered by the
 * new deployment after the last one answered by the old: its send time, less the PATCH's 200
 * (or the file write), and less the PATCH's start — so the figures' resolution is one gap
 * between a replica's arrivals (1000 / --rate ms). From the 200 it can be negative: B applied
 * the change before A's answer reached the client (A answers once the document is stored in
 * Redis — which publishes it — and applied; the publish to B races that answer).
 *
 * Reported: PATCH → B serving (median, max over the edits; issue 12: within 1 s of the PATCH
 * sent), PATCH → A serving, file write → serving; per kind of period the load's p50/p99/max
 * and every non-2xx or socket error; and the verdict that the edits cause no latency spike
 * beyond a reload's: each round's edit-period p99 over the same round's reload-period p99,
 * median over rounds, at most 1.25 (paired by round so that a burst of outside load on a
 * shared machine moves one ratio, not the verdict). Exit code 1 when a request failed or an
 * edit was not served by B within 1 s; the latency verdict is reported, not enforced.
 *
 *   node load-tests/live-edit.ts [--edits 20] [--rate 200] [--gap-ms 1500] [--warmup-s 3]
 *                                [--replica-workers 1] [--json]
 *
 * Markdown on stdout (and `--json`: one JSON line after it), progress on stderr. Every child
 * process is killed at the end; the temporary directory (configs with keys in it) goes too.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { HERE, fmt, freePort, httpStatus, installCleanup, killAll, logTail, spawnNode, table, tempDir, waitReady, type Proc } from './bench-lib.ts';
import { SWITCHYARD_BIN, benchRedis } from './bench-targets.ts';
import { analyse, type Change, type Window } from './live-edit-analysis.ts';
import { ArrivalLoad } from './live-edit-load.ts';

const { values: a } = parseArgs({
  options: {
    edits: { type: 'string', default: '20' },
    rate: { type: 'string', default: '200' },
    'gap-ms': { type: 'string', default: '1500' },
    'warmup-s': { type: 'string', default: '3' },
    'replica-workers': { type: 'string', default: '1' },
    json: { type: 'boolean', default: false },
  },
});
const EDITS = Math.max(1, Number(a.edits));
const RATE = Math.max(1, Number(a.rate));
const GAP_MS = Math.max(200, Number(a['gap-ms']));
const WARMUP_S = Math.max(0, Number(a['warmup-s']));
const WORKERS = a['replica-workers'];

const ENDPOINT = 'live';
const KEY = 'live-edit-endpoint-key-0123456789';
const ADMIN_KEY = 'live-edit-admin-key-0123456789';
/** Issue 12: every replica applies a change within 1 s. */
const PROPAGATION_LIMIT_MS = 1000;

const T0 = performance.now();
const progress = (s: string): void => { process.stderr.write(`[${((performance.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${s}\n`); };

/** The flips: everything on one deployment, then on the other. */
const split = (toGreen: boolean): Record<string, number> => (toGreen ? { blue: 0, green: 100 } : { blue: 100, green: 0 });

interface Replica { name: string; proc: Proc; file: string; pub: number; admin: number }

/** A replica's config; `variant` toggles a field no edit touches, so each reload changes the endpoint. */
function config(r: Pick<Replica, 'pub' | 'admin'>, redisUrl: string, backendUrl: string, toGreen: boolean, variant = 0): string {
  const deployment = { instances: [backendUrl], request_settings: { max_concurrent_requests_per_instance: 128, request_timeout_ms: 5000 + variant } };
  return stringify({
    server: { listen: { host: '127.0.0.1', port: r.pub }, admin_listen: { host: '127.0.0.1', port: r.admin } },
    state: { redis_url: redisUrl },
    admin: { keys: [ADMIN_KEY] },
    endpoints: {
      [ENDPOINT]: { auth_mode: 'key', keys: { primary: KEY }, traffic: split(toGreen), deployments: { blue: deployment, green: deployment } },
    },
  });
}

/** Replace the file whole (write, then rename), as editors and ConfigMaps do: the watcher never sees half a file. */
function writeAtomically(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

async function startReplica(name: string, dir: string, redisUrl: string, backendUrl: string): Promise<Replica> {
  const ports = { pub: await freePort(), admin: await freePort() };
  const file = join(dir, `${name}.yaml`);
  writeAtomically(file, config(ports, redisUrl, backendUrl, false));
  const proc = spawnNode(`replica-${name}`, SWITCHYARD_BIN, ['serve', '--config', file, '--workers', WORKERS], { cpu: undefined, logDir: dir, discardStdout: true });
  await waitReady(proc, async () => (await httpStatus(`http://127.0.0.1:${ports.admin}/readyz`)).status === 200, 20_000);
  return { name, proc, file, ...ports };
}

async function patch(r: Replica, body: unknown): Promise<{ status: number; text: string }> {
  const res = await fetch(`http://127.0.0.1:${r.admin}/admin/endpoints/${ENDPOINT}`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/merge-patch+json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, text: await res.text() };
}

async function main(): Promise<number> {
  installCleanup();
  const dir = tempDir();
  const redis = await benchRedis();
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  const backendPort = await freePort();
  const backend = spawnNode('backend', join(HERE, 'backend.ts'), ['--port', String(backendPort)], { cpu: undefined, logDir: dir });
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  await waitReady(backend, async () => (await httpStatus(`${backendUrl}/score`, { method: 'POST', body: '{}' })).status === 200);
  const A = await startReplica('a', dir, redisUrl, backendUrl);
  const B = await startReplica('b', dir, redisUrl, backendUrl);
  progress(`replicas up (A :${A.pub}, B :${B.pub}, --workers ${WORKERS}), redis :${redis.port}`);

  // The admin write path must exist before a run means anything.
  const probe = await patch(A, { traffic: split(false) }).catch((err: unknown) => ({ status: 0, text: String(err) }));
  if (probe.status !== 200) {
    throw new Error(`PATCH /admin/endpoints/${ENDPOINT} on A answered ${probe.status}: ${probe.text.slice(0, 300)}\n${logTail(A.proc)}`);
  }

  const load = new ArrivalLoad([`http://127.0.0.1:${A.pub}`, `http://127.0.0.1:${B.pub}`], `/endpoints/${ENDPOINT}/score`, KEY, RATE);
  load.start();
  progress(`load: ${RATE} req/s per replica; warm-up ${WARMUP_S} s`);
  await sleep(WARMUP_S * 1000);
  const windows: Window[] = [{ name: 'quiet', periods: [] }, { name: 'reload', periods: [] }, { name: 'edit', periods: [] }];
  const [quiet, reload, edit] = windows as [Window, Window, Window];
  const changes: Change[] = [];
  let toGreen = false;
  /** One period of `kind`: `act` (the change, if any) at its start, then the rest of the gap. */
  const period = async (w: Window, act?: () => Promise<void>): Promise<void> => {
    const from = performance.now();
    if (act) await act();
    const wait = GAP_MS - (performance.now() - from);
    if (wait > 0) await sleep(wait);
    w.periods.push([from, performance.now()]);
  };
  progress(`${EDITS} rounds of quiet, file reload, PATCH on A; ${GAP_MS} ms each`);
  for (let i = 0; i < EDITS; i++) {
    await period(quiet);
    await period(reload, async () => {
      toGreen = !toGreen;
      const sent = performance.now();
      for (const r of [A, B]) writeAtomically(r.file, config(r, redisUrl, backendUrl, toGreen, i % 2));
      changes.push({ kind: 'reload', sent, answered: performance.now(), to: toGreen ? 'green' : 'blue', status: 200 });
    });
    await period(edit, async () => {
      toGreen = !toGreen;
      const sent = performance.now();
      const res = await patch(A, { traffic: split(toGreen) }).catch((err: unknown) => ({ status: 0, text: String(err) }));
      if (res.status !== 200) progress(`  PATCH ${i + 1}: ${res.status} ${res.text.slice(0, 200)}`);
      changes.push({ kind: 'edit', sent, answered: performance.now(), to: toGreen ? 'green' : 'blue', status: res.status });
    });
  }
  await load.stop();
  progress(`load stopped: ${load.records.length} requests`);

  const result = analyse(load.records, windows, changes, { rate: RATE, limitMs: PROPAGATION_LIMIT_MS });
  process.stdout.write(`${report(result)}\n`);
  if (a.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  return result.ok ? 0 : 1;
}

function report(r: ReturnType<typeof analyse>): string {
  const out = [
    '## Live edit under load (two replicas, one Redis)',
    '',
    `${new Date().toISOString()} · Node ${process.version} · ${RATE} req/s per replica (open loop, evenly spaced), replicas \`serve --workers ${WORKERS}\` · `
      + `${EDITS} rounds of a quiet period, a file reload and a PATCH on A, ${GAP_MS} ms each, each change moving all traffic to the other deployment · `
      + `resolution of the "serving" times: ${fmt(1000 / RATE, 1)} ms (one arrival gap)`,
    '',
    table(['change → serving (ms)', 'n', 'from the 200 / write: median', 'max', 'from the PATCH sent: median', 'max', 'not served within the gap'],
      r.propagation.map((p) => [p.label, String(p.n), fmt(p.median), fmt(p.max), p.label.startsWith('PATCH') ? fmt(p.fromSent.median) : '', p.label.startsWith('PATCH') ? fmt(p.fromSent.max) : '', String(p.missed)])),
    '',
    table(['periods', 'requests', 'non-2xx', 'errors', 'p50 ms', 'p99 ms', 'max ms'], r.windows.map((w) => [
      `${w.name} (${w.periods})`, String(w.requests), String(w.non2xx), String(w.errors), fmt(w.p50), fmt(w.p99), fmt(w.max),
    ])),
    '',
    ...r.verdicts.map((v) => `- ${v}`),
  ];
  return out.join('\n');
}

main().then(
  async (code) => { await killAll(); process.exit(code); },
  async (err: unknown) => {
    process.stderr.write(`live-edit failed: ${err instanceof Error ? err.message : String(err)}\n`);
    await killAll();
    process.exit(2);
  },
);
