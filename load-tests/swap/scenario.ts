/** What both parts of the swap test share: the config they write, and how they read the gateway. */
import { stringify } from 'yaml';
import { get, metric, waitFor, type GatewayProcess, type LogLine } from './gateway-process.ts';

export const KEY = 'swap-test-key-0123456789abcdef';
/** Readiness probe on every deployment: every 0.1 s, unready after 3 failures (0.3 s). */
export const PROBE = { path: '/ready', initial_delay: 0, period: 0.1, timeout: 1, success_threshold: 1, failure_threshold: 3 };
export const OUTLIER = { consecutive_failures: 3, base_ejection_time_s: 30, max_ejection_percent: 50 };
/** Well above the load's connections: the per-instance cap (default 16, with a queue) never binds. */
export const REQUEST_SETTINGS = { request_timeout_ms: 5000, max_concurrent_requests_per_instance: 64, max_queue_wait_ms: 2000 };

export type Progress = (msg: string) => void;

/** What the config and the checks need of a model server (in this process or its own). */
export interface Model {
  readonly name: string;
  readonly url: string;
}

export interface Ports {
  readonly pub: number;
  readonly admin: number;
}

/** The gateway's config file: one endpoint, the given deployments and split (YAML). */
export function configYaml(ports: Ports, endpoint: string, deployments: Record<string, readonly Model[]>, traffic: Record<string, number>): string {
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

export async function scrape(adminUrl: string): Promise<string> {
  return (await get(`${adminUrl}/metrics`)).body;
}

export async function successfulReloads(adminUrl: string): Promise<number> {
  return metric(await scrape(adminUrl), 'switchyard_config_reloads_total', { result: 'success' }) ?? 0;
}

/** The gateway (the only process on the admin port) has applied one more config than `before`. */
export async function reloadApplied(adminUrl: string, before: number, what: string): Promise<number> {
  let now = before;
  await waitFor(async () => (now = await successfulReloads(adminUrl)) > before, what, 5_000, 15);
  return now;
}

async function instanceReady(adminUrl: string, m: Model): Promise<number | undefined> {
  return metric(await scrape(adminUrl), 'switchyard_instance_ready', { instance: m.url });
}

export async function waitInstanceReady(adminUrl: string, m: Model, value: 0 | 1, timeoutMs = 5_000): Promise<void> {
  await waitFor(async () => (await instanceReady(adminUrl, m)) === value, `${m.name} instance_ready=${value}`, timeoutMs, 10);
}

export function gatewayLog(gateways: readonly GatewayProcess[]): { label: string; line: LogLine }[] {
  const out: { label: string; line: LogLine }[] = [];
  for (const g of gateways) {
    for (const line of g.lines) if ((line.level ?? 0) >= 40 || line.msg === 'stderr') out.push({ label: g.label, line });
    for (const line of g.badAccess) out.push({ label: g.label, line });
  }
  return out;
}
