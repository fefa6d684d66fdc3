/**
 * What the bench measures through: the request body, the Switchyard variants (one gateway
 * process each, its own config and headers), the Redis server the Redis-backed rate limit
 * uses, the baseline checkout for `--baseline-ref`, nginx as a reference row, and the check
 * that a target answers before it is measured.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CPU_LOAD, CPU_PROXY, HERE, freePort, httpStatus, onPath, spawnCmd, spawnNode, tempDir, waitReady } from './bench-lib.ts';
import type { Proc } from './bench-lib.ts';

export const BODY = JSON.stringify({
  input_data: { columns: ['a', 'b', 'c', 'd'], index: [0, 1], data: [[0.1, 2.5, 3.25, 4], [5.5, 6.75, 7, 8.125]] },
  params: { top_k: 1, threshold: 0.5 },
  client: 'switchyard-bench',
  pad: 'x'.repeat(24),
});
const BENCH_KEY = 'bench-key-7c0ffee-0123456789abcdef';
const BENCH_TENANT = '11111111-2222-4333-8444-555555555555';
const BENCH_AUDIENCE = 'api://switchyard-bench';
const BENCH_ROLE = 'Scorer';

/** One row: where the load goes and what each request carries. */
export interface Target {
  name: string;
  url: string;
  headers: Record<string, string>;
  /** The process serving it, for CPU and RSS. */
  pid?: number | undefined;
  /** The process, when the bench started it (to stop it before the end of the run). */
  proc?: Proc;
  /** A Switchyard's admin listener (`http://host:port`), for /metrics. */
  adminUrl?: string;
  /**
   * A counter read before and after each run; the bench reports its increase per request
   * (`switchyard-ratelimit-redis`: Redis script calls, proof the limit went through Redis).
   */
  counter?: { label: string; read(): Promise<number> };
}

// ---------------------------------------------------------------------------------------
// Switchyard variants — one gateway process per variant, each its own config and headers.
// `switchyard-jwt` authenticates with an Entra-style RS256 token from a stand-in identity
// provider (load-tests/entra-stand-in.ts, on the load generator's CPU); one token is reused,
// as real clients do for its lifetime, so this measures the verified-token path.
// ---------------------------------------------------------------------------------------
export interface SwitchyardVariant {
  name: string;
  /**
   * Config without `server` (the harness adds listen/admin_listen), the request headers, and
   * optionally a counter read around each run (see {@link Target.counter}).
   */
  setup(backendUrl: string): Promise<{ config: Record<string, unknown>; headers: Record<string, string>; counter?: Target['counter'] }>;
}

/**
 * The concurrency limit is on for every deployment (SPEC §2: 16 per instance by default):
 * each variant sets it above the bench's connections so that the limiter's queueing is not
 * what is measured (http-proxy's agent allows 128 sockets too).
 */
const REQUEST_SETTINGS = { max_concurrent_requests_per_instance: 128, request_timeout_ms: 10_000 };

/** The key-authenticated endpoint of `switchyard`, plus `extra` endpoint and deployment settings. */
function keyEndpoint(backendUrl: string, extra: Record<string, unknown> = {}, deploymentExtra: Record<string, unknown> = {}): Record<string, unknown> {
  const deployment = { instances: [backendUrl], request_settings: REQUEST_SETTINGS, ...deploymentExtra };
  return {
    auth_mode: 'key',
    keys: { primary: BENCH_KEY },
    traffic: { blue: 90, green: 10 },
    deployments: { blue: deployment, green: deployment },
    ...extra,
  };
}

/**
 * A limit no bench run reaches (each run sees at most a few hundred thousand requests), so
 * that the cost of deciding is measured, not refusals: the non-2xx column must stay 0.
 */
const UNREACHED_LIMIT = { requests_per_second: 1_000_000, burst: 1_000_000 };

export const SWITCHYARD_VARIANTS: SwitchyardVariant[] = [
  {
    name: 'switchyard',
    setup: async (backendUrl) => ({
      config: { endpoints: { bench: keyEndpoint(backendUrl) } },
      headers: { authorization: `Bearer ${BENCH_KEY}` },
    }),
  },
  {
    name: 'switchyard-jwt',
    setup: async (backendUrl) => {
      const port = await freePort();
      const logDir = tempDir();
      const idp = spawnNode('entra-stand-in', join(HERE, 'entra-stand-in.ts'), [
        '--port', String(port), '--tenant', BENCH_TENANT, '--audience', BENCH_AUDIENCE, '--role', BENCH_ROLE,
      ], { cpu: CPU_LOAD, logDir });
      const authority = `http://127.0.0.1:${port}`;
      let token = '';
      await waitReady(idp, async () => {
        const r = await httpStatus(`${authority}/token`);
        if (r.status === 200) token = (JSON.parse(r.body) as { token: string }).token;
        return r.status === 200;
      }, 10_000);
      const deployment = { instances: [backendUrl], request_settings: REQUEST_SETTINGS };
      return {
        config: {
          entra: { authority, tenants: [BENCH_TENANT], audiences: [BENCH_AUDIENCE] },
          endpoints: {
            bench: {
              auth_mode: 'aad_token',
              roles: [BENCH_ROLE],
              traffic: { blue: 90, green: 10 },
              deployments: { blue: deployment, green: deployment },
            },
          },
        },
        headers: { authorization: `Bearer ${token}` },
      };
    },
  },
  // `switchyard` with a per-endpoint rate limit, in process.
  // Health checks on every instance: a readiness probe each second and outlier detection on
  // every attempt. Probes are off the request path; outlier detection is a field write per
  // attempt. Issue 10's target: ≥ 0.97x of `switchyard`.
  {
    name: 'switchyard-probes',
    setup: async (backendUrl) => ({
      config: {
        endpoints: {
          bench: keyEndpoint(backendUrl, {}, {
            readiness_probe: { path: '/ready', period: 1, timeout: 1 },
            outlier_detection: { consecutive_failures: 5, base_ejection_time_s: 30 },
          }),
        },
      },
      headers: { authorization: `Bearer ${BENCH_KEY}` },
    }),
  },
  // 10% of the traffic copied to a shadow deployment on a backend of its own (pinned with the
  // load), compared with the live answer. Issue 11's target: ≥ 0.9x of `switchyard`.
  {
    name: 'switchyard-mirror',
    setup: async (backendUrl) => {
      const shadowUrl = await shadowBackend();
      const ep = keyEndpoint(backendUrl, { mirror_traffic: { shadow: 10 } });
      const deployments = ep.deployments as Record<string, unknown>;
      deployments.shadow = { instances: [shadowUrl], request_settings: REQUEST_SETTINGS };
      return { config: { endpoints: { bench: ep } }, headers: { authorization: `Bearer ${BENCH_KEY}` } };
    },
  },
  {
    name: 'switchyard-ratelimit',
    setup: async (backendUrl) => ({
      config: { endpoints: { bench: keyEndpoint(backendUrl, { rate_limit: { ...UNREACHED_LIMIT, per: 'endpoint' } }) } },
      headers: { authorization: `Bearer ${BENCH_KEY}` },
    }),
  },
  // The same limit kept in Redis (one EVALSHA round trip per request). `on_redis_error:
  // closed`: a Redis call that fails or passes its deadline answers 503, so a degraded run
  // shows in the non-2xx column instead of passing for a Redis-backed one with local buckets.
  {
    name: 'switchyard-ratelimit-redis',
    setup: async (backendUrl) => {
      const redis = await benchRedis();
      return {
        config: {
          state: { redis_url: `redis://127.0.0.1:${redis.port}`, on_redis_error: 'closed' },
          endpoints: { bench: keyEndpoint(backendUrl, { rate_limit: { ...UNREACHED_LIMIT, per: 'endpoint' } }) },
        },
        headers: { authorization: `Bearer ${BENCH_KEY}` },
        counter: { label: 'Redis script calls (EVALSHA)', read: () => redisScriptCalls(redis.port) },
      };
    },
  },
];

// ---------------------------------------------------------------------------------------
// Redis for `switchyard-ratelimit-redis`: one redis-server per bench run on a free port,
// no persistence, pinned with the backend and the load generator; killed with the rest.
// ---------------------------------------------------------------------------------------
let redisStarted: Promise<{ port: number; proc: Proc }> | undefined;

/** The bench's own redis-server, started on first use. Throws when redis-server is not installed. */
let shadowStarted: Promise<string> | undefined;

/** A second backend for the mirror's shadow deployment, pinned with the load generator; killed with the rest. */
export function shadowBackend(): Promise<string> {
  shadowStarted ??= (async () => {
    const port = await freePort();
    const proc = spawnNode('shadow-backend', join(HERE, 'backend.ts'), ['--port', String(port)], { cpu: CPU_LOAD, logDir: tempDir() });
    const url = `http://127.0.0.1:${port}`;
    await waitReady(proc, async () => (await httpStatus(`${url}/score`, { method: 'POST', body: '{}' }).catch(() => ({ status: 0 }))).status === 200, 10_000);
    return url;
  })();
  return shadowStarted;
}

export function benchRedis(): Promise<{ port: number; proc: Proc }> {
  redisStarted ??= (async () => {
    if (!onPath('redis-server')) throw new Error('redis-server is not installed (apt-get install redis-server)');
    const port = await freePort();
    const proc = spawnCmd('redis-server', 'redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes',
    ], { cpu: CPU_LOAD, logDir: tempDir() });
    await waitReady(proc, async () => (await redisCommand(port, 'PING').catch(() => '')) === 'PONG', 10_000);
    return { port, proc };
  })();
  return redisStarted;
}

/**
 * Scripts run (EVALSHA and EVAL calls, from `INFO commandstats`): one per rate-limit decision,
 * plus a heartbeat a second. (`total_commands_processed` would count the commands inside each
 * script too.)
 */
export async function redisScriptCalls(port: number): Promise<number> {
  const info = await redisCommand(port, 'INFO commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) n += Number(m[1]);
  return n;
}

/** One inline command (no arguments with spaces) on a fresh connection; the reply as a string. */
export function redisCommand(port: number, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, reply = ''): void => {
      sock.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    sock.setTimeout(2000, () => done(new Error('redis: no reply')));
    sock.on('error', (err) => done(err));
    sock.on('connect', () => sock.write(`${command}\r\n`));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const line = buf.subarray(1, eol).toString();
      const kind = String.fromCharCode(buf[0] ?? 0);
      if (kind === '+' || kind === ':') done(undefined, line);
      else if (kind === '-') done(new Error(`redis: ${line}`));
      else if (kind === '$') {
        const len = Number(line);
        if (buf.length >= eol + 2 + len) done(undefined, buf.subarray(eol + 2, eol + 2 + len).toString());
      } else done(new Error(`redis: unexpected reply ${JSON.stringify(buf.subarray(0, 40).toString())}`));
    });
  });
}

export const SWITCHYARD_BIN = join(HERE, '..', 'bin', 'switchyard.mjs');

/** A checkout of `ref` beside this one, sharing node_modules; removed at exit. */
export function baselineTree(ref: string, logDir: string): string {
  const root = join(HERE, '..');
  const dir = join(logDir, 'baseline');
  execFileSync('git', ['-C', root, 'worktree', 'add', '--detach', dir, ref], { stdio: 'ignore' });
  process.once('exit', () => {
    try {
      execFileSync('git', ['-C', root, 'worktree', 'remove', '--force', dir], { stdio: 'ignore' });
    } catch {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

const workersSupport = new Map<string, boolean>();

/**
 * Whether `bin serve` takes `--workers` (a `--baseline-ref` checkout may predate it): its
 * `--help` says so.
 */
function takesWorkers(bin: string): boolean {
  let known = workersSupport.get(bin);
  if (known === undefined) {
    try {
      known = execFileSync(process.execPath, [bin, 'serve', '--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).includes('--workers');
    } catch (err) {
      known = String((err as { stdout?: unknown }).stdout ?? '').includes('--workers');
    }
    workersSupport.set(bin, known);
  }
  return known;
}

/**
 * Start a variant as `switchyard serve --config FILE` plus `serve.args`, pinned to the
 * proxies' CPU unless `serve.cpu` says otherwise (undefined: not pinned, as `--workers 2` needs).
 * Without `serve.args`, a version that has `--workers` gets `--workers 1`: its default is one
 * worker per CPU it may use, which would make a row's process count depend on the pinning.
 */
export async function startSwitchyard(v: SwitchyardVariant, backendUrl: string, logDir: string, bin = SWITCHYARD_BIN, name = v.name,
  serve: { args?: readonly string[]; cpu?: number | undefined } = { cpu: CPU_PROXY }): Promise<Target> {
  const [port, admin] = [await freePort(), await freePort()];
  const { config, headers, counter } = await v.setup(backendUrl);
  const file = join(logDir, `${name}.yaml`);
  const server = { listen: { host: '127.0.0.1', port }, admin_listen: { host: '127.0.0.1', port: admin } };
  writeFileSync(file, stringify({ server, ...config }));
  const args = serve.args ?? (takesWorkers(bin) ? ['--workers', '1'] : []);
  const proc = spawnNode(name, bin, ['serve', '--config', file, ...args], { cpu: serve.cpu, logDir, discardStdout: process.env.BENCH_KEEP_LOGS !== '1' });
  await waitReady(proc, async () => (await httpStatus(`http://127.0.0.1:${admin}/readyz`)).status === 200, 20_000);
  const target: Target = { name, url: `http://127.0.0.1:${port}/endpoints/bench/score`, headers, pid: proc.child.pid, adminUrl: `http://127.0.0.1:${admin}`, proc };
  if (counter) target.counter = counter;
  await checkTarget(target, proc);
  return target;
}

/**
 * nginx as a reference row (when installed): one worker pinned like the proxies, keep-alive
 * to the backend, and an access log written to a file with a buffer, as Switchyard writes its
 * own. Not a dependency: `apt-get install nginx` to get the row.
 */
export async function startNginx(backendUrl: string, logDir: string): Promise<Target> {
  if (!onPath('nginx')) throw new Error('nginx is not installed (apt-get install nginx)');
  const port = await freePort();
  const conf = join(logDir, 'nginx.conf');
  writeFileSync(conf, `worker_processes 1;
daemon off;
master_process off;
pid ${join(logDir, 'nginx.pid')};
error_log ${join(logDir, 'nginx-error.log')} warn;
events { worker_connections 4096; }
http {
  access_log ${join(logDir, 'nginx-access.log')} combined buffer=64k flush=1s;
  client_body_temp_path ${logDir};
  proxy_temp_path ${logDir};
  upstream backend { server ${new URL(backendUrl).host}; keepalive 128; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`);
  const proc = spawnCmd('nginx', 'nginx', ['-c', conf, '-p', logDir, '-e', join(logDir, 'nginx-error.log')], { cpu: CPU_PROXY, logDir });
  const target = { name: 'nginx', url: `http://127.0.0.1:${port}/score`, headers: {}, pid: proc.child.pid };
  await checkTarget(target, proc);
  return target;
}

/** One request through a target must answer 200 before it is measured. */
export async function checkTarget(t: Target, proc: Proc): Promise<void> {
  const init = { method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: BODY };
  let res = { status: 0, body: '' };
  await waitReady(proc, async () => (res = await httpStatus(t.url, init)).status === 200, 10_000)
    .catch((err: unknown) => { throw new Error(`${t.name}: POST ${t.url} -> ${res.status} ${res.body.slice(0, 300)}\n${String(err)}`); });
}
