import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { freePort, startUpstream, type TestUpstream } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/http.ts';
import { startRedis, type TestRedis } from '../helpers/redis.ts';

// Issue 9's acceptance test for global limits: THREE `switchyard serve` processes share one
// Redis; load through all three for a couple of seconds admits, in total, the limit
// (rate × duration + burst) within ±10%.

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));
const KEY = 'replicas-rate-limit-key';
const RATE = 100;
const BURST = 50;
const LOAD_MS = 2000;

interface Served {
  readonly proc: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  readonly exited: Promise<void>;
  output(): string;
}

let dir: string;
let redis: TestRedis;
let model: TestUpstream;
const served: Served[] = [];

async function serve(name: string): Promise<Served> {
  const ports = { pub: await freePort(), admin: await freePort() };
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, `
server:
  listen: { host: 127.0.0.1, port: ${ports.pub} }
  admin_listen: { host: 127.0.0.1, port: ${ports.admin} }
state:
  redis_url: ${redis.url}
  on_redis_error: closed
logging: { level: warn, access_log: false }
endpoints:
  cars:
    keys: { primary: ${KEY} }
    traffic: { blue: 100 }
    rate_limit: { requests_per_second: ${RATE}, burst: ${BURST} }
    deployments:
      blue: { instances: [${model.url}] }
`);
  const proc = spawn(process.execPath, [BIN, 'serve', '--config', file, '--workers', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  // Keep the tail only: access lines are many under load.
  const keep = (c: Buffer): void => { out = (out + c.toString()).slice(-20_000); };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const s: Served = { proc, url: `http://127.0.0.1:${ports.pub}`, adminUrl: `http://127.0.0.1:${ports.admin}`, exited, output: () => out };
  served.push(s);
  // Ready, and connected to the shared store (before that the limit is not global yet).
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`switchyard serve exited ${proc.exitCode}:\n${out}`);
    const metrics = await fetch(`${s.adminUrl}/metrics`).then((r) => (r.ok ? r.text() : ''), () => '');
    return /^switchyard_state_degraded 0$/m.test(metrics);
  }, `${name} ready with the shared store`, 20_000);
  return s;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-rl-replicas-'));
  redis = await startRedis();
  model = await startUpstream('blue');
});
after(async () => {
  for (const s of served) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  await Promise.all(served.map((s) => s.exited));
  await model?.close();
  await redis?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('three gateway processes sharing one Redis admit the limit in total, within ±10%', async (t) => {
  const gateways = await Promise.all(['a', 'b', 'c'].map(serve));
  const agent = new Agent({ connections: 8 });
  const seenBefore = model.seen.length;
  const counts = gateways.map(() => ({ ok: 0, limited: 0, other: 0 }));
  const others = new Map<string, number>();
  const sent: number[] = [];
  /** One client loop on one gateway: a request every few ms, well over its share of the limit. */
  const drive = async (i: number, until: number): Promise<void> => {
    while (performance.now() < until) {
      sent.push(performance.now());
      const r = await request(`${gateways[i]!.url}/endpoints/cars/score`, {
        method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: '{}', dispatcher: agent,
      });
      await r.body.dump();
      const c = counts[i]!;
      if (r.statusCode === 200) c.ok++;
      else if (r.statusCode === 429) c.limited++;
      else {
        c.other++;
        const what = `${r.statusCode}`;
        others.set(what, (others.get(what) ?? 0) + 1);
      }
      await sleep(4);
    }
  };
  try {
    const start = performance.now();
    await Promise.all(gateways.flatMap((_, i) => [drive(i, start + LOAD_MS), drive(i, start + LOAD_MS)]));
    const elapsedS = (performance.now() - start) / 1000;

    const admitted = counts.reduce((n, c) => n + c.ok, 0);
    const limit = RATE * elapsedS + BURST;
    // What a perfect limiter admits of the requests as they were sent: the limit, unless the
    // client itself stalled (a starved test process sends nothing for a while, and a full
    // bucket does not bank tokens), so a busy machine does not fail the gateways' test.
    const ideal = idealAdmissions(sent, RATE, BURST);
    const detail = `admitted ${admitted}; limit (rate × ${elapsedS.toFixed(2)} s + burst) ${limit.toFixed(0)}; `
      + `a perfect limiter on this traffic ${ideal}; per gateway ${JSON.stringify(counts)}; others ${JSON.stringify([...others])}`;
    t.diagnostic(detail);
    assert.ok(counts.every((c) => c.ok > 0 && c.limited > 0), `each gateway admitted some and refused some: ${detail}`);
    // 503s (a Redis call past its 50 ms deadline, with on_redis_error: closed) may have spent
    // a token: they count as possibly admitted for the lower bound.
    const other = counts.reduce((n, c) => n + c.other, 0);
    assert.ok(other <= offeredOf(counts) * 0.02, `few decisions failed: ${detail}`);
    assert.ok(admitted <= ideal * 1.1, `not over the limit: ${detail}`);
    assert.ok(admitted + other >= ideal * 0.9, `not under the limit: ${detail}`);
    assert.ok(admitted <= limit * 1.1, `never over rate × duration + burst: ${detail}`);
    // The load really was over the limit (or nothing was tested). Not "twice the limit": on a
    // busy 2-core machine the test's own client cannot always offer that much, and over it by
    // a fifth, with every gateway refusing some (above), the limiter was tested.
    assert.ok(offeredOf(counts) > 1.2 * limit, detail);
    assert.equal(model.seen.length - seenBefore, admitted, 'the model saw exactly the admitted requests');
  } finally {
    await agent.close();
  }
});

function offeredOf(counts: readonly { ok: number; limited: number; other: number }[]): number {
  return counts.reduce((n, c) => n + c.ok + c.limited + c.other, 0);
}

/** Admissions of a GCRA bucket (`rate`/s, `burst`), full at the start, for requests at `times` (ms). */
function idealAdmissions(times: readonly number[], rate: number, burst: number): number {
  const interval = 1000 / rate;
  let tat = -Infinity;
  let n = 0;
  for (const t of [...times].sort((a, b) => a - b)) {
    const base = Math.max(tat, t);
    if (base + interval - t <= burst * interval + 1e-9) {
      tat = base + interval;
      n++;
    }
  }
  return n;
}
