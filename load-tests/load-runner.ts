/**
 * One load-generator run in its own process (so bench.ts can pin it with taskset), printing
 * one JSON {@link LoadResult} line on stdout. autocannon through its programmatic API, or wrk
 * (`--latency` output parsed) when asked. Latency percentiles for autocannon are computed
 * here from every 2xx response time (float ms): autocannon's own histogram has 1 ms buckets,
 * too coarse for sub-millisecond proxy overheads.
 *
 *   node load-tests/load-runner.ts '{"tool":"autocannon","url":"http://127.0.0.1:5001/score",...}'
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';

export interface LoadSpec {
  tool: 'autocannon' | 'wrk';
  url: string;
  method: 'POST' | 'GET';
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationS: number;
  /** Seconds of load before `durationS` whose responses are not counted (JIT, connections). */
  warmupS: number;
  /** Cap on requests per second over all connections (autocannon `overallRate`); 0 = none. */
  rate: number;
  /** Instead of `body`: a JSON body of this many bytes, built here (too big for a command line). */
  bodyBytes?: number;
}

export interface LoadResult {
  tool: string;
  /** 2xx responses per second. */
  rps: number;
  p50: number;
  p99: number;
  ok: number;
  non2xx: number;
  errors: number;
  durationS: number;
  /** Every answer the target gave in the run, warm-up included (what its CPU time was spent on). */
  served?: number;
}

interface AutocannonResult { duration: number; errors: number; timeouts: number; non2xx: number; '2xx': number }
interface AutocannonInstance extends EventEmitter { stop(): void }
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, res: AutocannonResult) => void) => AutocannonInstance;

/** The p-th percentile (0..100) of ascending `sorted`, nearest rank. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** `{"pad":"xxx…"}` of exactly `n` bytes. */
export function paddedBody(n: number): string {
  return `{"pad":"${'x'.repeat(Math.max(0, n - 10))}"}`;
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  let lat = new Float64Array(1 << 16);
  let n = 0;
  let non2xx = 0;
  let served = 0;
  const opts: Record<string, unknown> = {
    url: spec.url, method: spec.method, headers: spec.headers, body: spec.bodyBytes ? paddedBody(spec.bodyBytes) : spec.body,
    connections: spec.connections, duration: spec.durationS + spec.warmupS, timeout: 10,
  };
  const from = performance.now() + spec.warmupS * 1000;
  if (spec.rate > 0) opts.overallRate = spec.rate;
  const res = await new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon(opts, (err, r) => (err ? reject(err) : resolve(r)));
    inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
      served++;
      if (performance.now() < from) return;
      if (status < 200 || status > 299) { non2xx++; return; }
      if (n === lat.length) { const next = new Float64Array(lat.length * 2); next.set(lat); lat = next; }
      lat[n++] = ms;
    });
    process.once('SIGTERM', () => inst.stop());
  });
  const measuredS = (performance.now() - from) / 1000;
  const sorted = lat.subarray(0, n).sort();
  return {
    tool: 'autocannon', rps: n / measuredS, p50: percentile(sorted, 50), p99: percentile(sorted, 99),
    ok: n, non2xx, errors: res.errors + res.timeouts, durationS: measuredS, served,
  };
}

/** Parse `wrk --latency` output. Exported for a check by hand; wrk is not installed here. */
export function parseWrk(out: string, durationS: number): LoadResult {
  const toMs = (v: string, unit: string): number => Number(v) * ({ us: 1e-3, ms: 1, s: 1e3, m: 6e4 }[unit] ?? Number.NaN);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? toMs(m[1] ?? '', m[2] ?? '') : Number.NaN;
  };
  const total = Number(/(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out)?.[1] ?? Number.NaN);
  const took = /\d+ requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const seconds = took ? toMs(took[1] ?? '', took[2] ?? '') / 1000 : durationS;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    tool: 'wrk', rps: (total - non2xx) / seconds, p50: pct('50'), p99: pct('99'),
    ok: total - non2xx, non2xx, errors, durationS: seconds,
  };
}

/** A Lua long-bracket string; as a table key it needs spaces (`t[ [==[k]==] ]`: `t[[` would be a call). */
function luaString(s: string): string {
  return `[==[${s}]==]`;
}

async function runWrk(spec: LoadSpec): Promise<LoadResult> {
  if (spec.rate > 0) throw new Error('wrk cannot pace requests; use autocannon for a fixed rate');
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-wrk-'));
  const script = join(dir, 'req.lua');
  const body = spec.bodyBytes ? `'{"pad":"' .. string.rep("x", ${Math.max(0, spec.bodyBytes - 10)}) .. '"}'` : luaString(spec.body);
  const lines = [`wrk.method = ${luaString(spec.method)}`, `wrk.body = ${body}`];
  for (const [k, v] of Object.entries(spec.headers)) lines.push(`wrk.headers[ ${luaString(k)} ] = ${luaString(v)}`);
  writeFileSync(script, lines.join('\n') + '\n');
  const wrk = async (seconds: number): Promise<string> => {
    const args = ['-t1', `-c${spec.connections}`, `-d${Math.max(1, Math.round(seconds))}s`, '--timeout', '10s', '--latency', '-s', script, spec.url];
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    const stop = (): void => { child.kill('SIGTERM'); };
    process.once('SIGTERM', stop);
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    process.off('SIGTERM', stop);
    if (code !== 0) throw new Error(`wrk exited with ${code}: ${out}`);
    return out;
  };
  try {
    if (spec.warmupS > 0) await wrk(spec.warmupS); // wrk cannot skip a warm-up inside a run
    return parseWrk(await wrk(spec.durationS), spec.durationS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
  const run = spec.tool === 'wrk' ? runWrk : runAutocannon;
  run(spec).then(
    (r) => { process.stdout.write(JSON.stringify(r) + '\n'); },
    (err: unknown) => { process.stderr.write(`load-runner: ${String(err)}\n`); process.exitCode = 1; },
  );
}
