/**
 * `npm run bench:slow-uploads`: do slow uploads starve a model? (issue 7 item 2)
 *
 * One backend instance behind Switchyard. Normal traffic (a modest-rate POST load) is
 * measured alone, then while N connections each announce `Content-Length: 1000000`, send one
 * byte and go silent (the classic slow-body attack), alternating, for a few rounds. Printed: req/s,
 * p50/p99, non-2xx, and how many requests reached the backend (the stalled uploads should
 * never reach it: bodies up to `server.request_buffering_bytes` are read whole first).
 *
 *   node load-tests/slow-uploads.ts [--slow 300] [--rounds 3] [--duration 5] [--rate 500]
 *
 * Everything runs on loopback, bounded in count and time, and is killed at the end.
 */
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import {
  CPU_LOAD, CPU_PROXY, HERE, fmt, freePort, httpStatus, installCleanup, killAll, median, runLoad, spawnNode, table, tempDir, waitReady,
} from './bench-lib.ts';
import type { LoadResult } from './load-runner.ts';

const { values: a } = parseArgs({
  options: {
    slow: { type: 'string', default: '300' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    rate: { type: 'string', default: '500' },
  },
});
const SLOW = Math.min(2000, Math.max(1, Number(a.slow)));
const ROUNDS = Math.max(1, Number(a.rounds));
const DURATION = Math.max(1, Number(a.duration));
const RATE = Math.max(1, Number(a.rate));
const KEY = 'slow-uploads-bench-key-0123456789';
const progress = (s: string): void => { process.stderr.write(s + '\n'); };

function openSlowUploads(port: number, n: number): Promise<Socket[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<Socket>((resolve) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write(`POST /endpoints/bench/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{`);
      resolve(s);
    });
    s.on('error', () => {});
  })));
}

async function main(): Promise<void> {
  installCleanup();
  const logDir = tempDir();
  try {
    const [backendPort, port, admin] = [await freePort(), await freePort(), await freePort()];
    const backend = spawnNode('backend', join(HERE, 'backend.ts'), ['--port', String(backendPort)], { cpu: CPU_LOAD, logDir });
    await waitReady(backend, async () => (await httpStatus(`http://127.0.0.1:${backendPort}/score`, { method: 'POST', body: '{}' })).status === 200);
    const file = join(logDir, 'switchyard.yaml');
    writeFileSync(file, stringify({
      server: { listen: { host: '127.0.0.1', port }, admin_listen: { host: '127.0.0.1', port: admin } },
      logging: { access_log: false },
      endpoints: { bench: { keys: { primary: KEY }, traffic: { blue: 100 }, deployments: { blue: { instances: [`http://127.0.0.1:${backendPort}`] } } } },
    }));
    const gw = spawnNode('switchyard', join(HERE, '..', 'bin', 'switchyard.mjs'), ['serve', '--config', file], { cpu: CPU_PROXY, logDir, discardStdout: true });
    await waitReady(gw, async () => (await httpStatus(`http://127.0.0.1:${admin}/readyz`)).status === 200, 20_000);

    const spec = {
      tool: 'autocannon' as const, url: `http://127.0.0.1:${port}/endpoints/bench/score`, method: 'POST' as const,
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: '{"data":[[1,2,3]]}',
      connections: 10, durationS: DURATION, warmupS: 1, rate: RATE,
    };
    const calm: LoadResult[] = [];
    const attacked: LoadResult[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      calm.push(await runLoad(spec, logDir));
      progress(`round ${r + 1}/${ROUNDS} alone:            ${fmt(calm[r]!.rps, 0)} req/s p99 ${fmt(calm[r]!.p99)} ms`);
      const slow = await openSlowUploads(port, SLOW);
      attacked.push(await runLoad(spec, logDir));
      progress(`round ${r + 1}/${ROUNDS} with ${SLOW} slow uploads: ${fmt(attacked[r]!.rps, 0)} req/s p99 ${fmt(attacked[r]!.p99)} ms`);
      for (const s of slow) s.destroy();
    }
    const row = (name: string, rs: LoadResult[]): string[] => [name, fmt(median(rs.map((x) => x.rps)), 0),
      fmt(median(rs.map((x) => x.p50))), fmt(median(rs.map((x) => x.p99))), String(rs.reduce((s, x) => s + x.non2xx + x.errors, 0))];
    process.stdout.write([
      `## Slow uploads against one instance (${SLOW} connections: Content-Length 1000000, one byte, then silence)`,
      '',
      `normal traffic: POST, 10 connections, ~${RATE} req/s, ${ROUNDS} round(s) x ${DURATION} s each way, alternating; medians`,
      '',
      table(['normal traffic', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx + errors'], [row('alone', calm), row(`with ${SLOW} slow uploads`, attacked)]),
      '',
    ].join('\n'));
  } finally {
    await killAll();
  }
}

main().catch(async (err: unknown) => {
  process.stderr.write(`slow-uploads bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  await killAll();
  process.exit(1);
});
