/**
 * What the bench measures through: the request body, the Switchyard variants (one gateway
 * process each, its own config and headers), the baseline checkout for `--baseline-ref`,
 * nginx as a reference row, and the check that a target answers before it is measured.
 */
import { execFileSync } from 'node:child_process';
import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
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
export interface Target { name: string; url: string; headers: Record<string, string>; /** The process serving it, for CPU and RSS. */ pid?: number | undefined }

// ---------------------------------------------------------------------------------------
// Switchyard variants — one gateway process per variant, each its own config and headers.
// `switchyard-jwt` authenticates with an Entra-style RS256 token from a stand-in identity
// provider (load-tests/entra-stand-in.ts, on the load generator's CPU); one token is reused,
// as real clients do for its lifetime, so this measures the verified-token path.
// ---------------------------------------------------------------------------------------
export interface SwitchyardVariant {
  name: string;
  /** Config without `server` (the harness adds listen/admin_listen) and the request headers. */
  setup(backendUrl: string): Promise<{ config: Record<string, unknown>; headers: Record<string, string> }>;
}

export const SWITCHYARD_VARIANTS: SwitchyardVariant[] = [
  {
    name: 'switchyard',
    setup: async (backendUrl) => {
      // The concurrency limit is set above the bench's connections so that the limiter's
      // queueing is not what is measured (http-proxy's agent allows 128 sockets too).
      const request_settings = { max_concurrent_requests_per_instance: 128, request_timeout_ms: 10_000 };
      const deployment = { instances: [backendUrl], request_settings };
      return {
        config: {
          endpoints: {
            bench: {
              auth_mode: 'key',
              keys: { primary: BENCH_KEY },
              traffic: { blue: 90, green: 10 },
              deployments: { blue: deployment, green: deployment },
            },
          },
        },
        headers: { authorization: `Bearer ${BENCH_KEY}` },
      };
    },
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
      const request_settings = { max_concurrent_requests_per_instance: 128, request_timeout_ms: 10_000 };
      const deployment = { instances: [backendUrl], request_settings };
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
];

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

export async function startSwitchyard(v: SwitchyardVariant, backendUrl: string, logDir: string, bin = SWITCHYARD_BIN, name = v.name): Promise<Target> {
  const [port, admin] = [await freePort(), await freePort()];
  const { config, headers } = await v.setup(backendUrl);
  const file = join(logDir, `${name}.yaml`);
  const server = { listen: { host: '127.0.0.1', port }, admin_listen: { host: '127.0.0.1', port: admin } };
  writeFileSync(file, stringify({ server, ...config }));
  const proc = spawnNode(name, bin, ['serve', '--config', file], { cpu: CPU_PROXY, logDir, discardStdout: true });
  await waitReady(proc, async () => (await httpStatus(`http://127.0.0.1:${admin}/readyz`)).status === 200, 20_000);
  const target = { name, url: `http://127.0.0.1:${port}/endpoints/bench/score`, headers, pid: proc.child.pid };
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
