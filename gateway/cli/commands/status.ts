import { setTimeout as sleep } from 'node:timers/promises';
import { ADMIN_KEY_ENV, ADMIN_URL_ENV, AdminClient, AdminError, DEFAULT_ADMIN_URL, printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { key, measure, mirrorKey, requestCounts, round, type RequestCounts, type Rates } from './status-counters.ts';
import type { DeploymentStatus, EndpointStatus, EndpointView, InstanceStatus, InstanceView, MirrorStatus, StatusDocument } from './status-document.ts';
import { formatStatus } from './status-table.ts';


/**
 * `switchyard status [ENDPOINT]`: what an operator (and, for a mirror, an ML engineer) asks of
 * a running gateway, from its admin API — deployments and weights, instance health, in flight,
 * req/s and 5xx rate per deployment from the gateway's own counters, and the shadow report.
 *
 * Rates come from two scrapes of `/metrics` `--interval` ms apart (`switchyard_requests_total`):
 * requests per second over the window actually measured, and 5xx responses over all responses.
 * They are the counters of the one gateway process that answered (one replica, not the fleet).
 */

const DEFAULT_INTERVAL_MS = 1000;
const MAX_INTERVAL_MS = 60_000;

// --- Gathering ---

function instanceStatus(i: InstanceView): InstanceStatus {
  const p = i.last_probe;
  return {
    url: String(i.url ?? ''),
    ready: i.ready === true,
    ejected: i.ejected === true,
    ejected_until: i.ejected === true && typeof i.ejected_until === 'string' ? i.ejected_until : null,
    in_flight: typeof i.in_flight === 'number' ? i.in_flight : 0,
    last_probe: p
      ? {
        ok: p.ok === true,
        at: String(p.at ?? ''),
        status: typeof p.status === 'number' ? p.status : null,
        error: typeof p.error === 'string' ? p.error : null,
      }
      : null,
  };
}

function endpointStatus(view: EndpointView, mirror: MirrorStatus | null, rates: Rates | undefined): EndpointStatus {
  const name = String(view.name ?? '');
  const cfg = view.config ?? {};
  const state = view.state?.deployments ?? {};
  const names = [...new Set([...Object.keys(cfg.deployments ?? {}), ...Object.keys(state)])];
  const deployments = names.map((d): DeploymentStatus => {
    const instances = (state[d]?.instances ?? []).map(instanceStatus);
    return {
      name: d,
      traffic_percent: cfg.traffic?.[d] ?? 0,
      mirror_percent: cfg.mirror_traffic?.[d] ?? 0,
      readiness_probe: cfg.deployments?.[d]?.readiness_probe !== undefined,
      instances_total: instances.length,
      instances_ready: instances.filter((i) => i.ready && !i.ejected).length,
      instances_ejected: instances.filter((i) => i.ejected).length,
      in_flight: instances.reduce((n, i) => n + i.in_flight, 0),
      // A mirror target's row counts the copies sent to it.
      ...measure(rates, (k) => k === key(name, d) || k === mirrorKey(name, d)),
      instances,
    };
  });
  const all = measure(rates, (k) => k.startsWith(`${name}\0`));
  return {
    name,
    ...all,
    not_routed_per_second: measure(rates, (k) => k === key(name, '')).requests_per_second,
    deployments,
    mirror,
  };
}

const hasMirror = (v: EndpointView): boolean => Object.values(v.config?.mirror_traffic ?? {}).some((p) => p > 0);

/**
 * Read the gateway: the endpoint(s), their shadow reports, and (unless `intervalMs` is 0) two
 * scrapes of `/metrics` about `intervalMs` apart. Fails fast (before the wait) when the
 * endpoint or the API cannot be read.
 */
export async function gatherStatus(client: AdminClient, endpoint: string | undefined, intervalMs: number): Promise<StatusDocument> {
  const scrape = async (): Promise<{ counts: RequestCounts; at: number }> => {
    try {
      const m = await client.metrics();
      return { counts: requestCounts(m.text), at: performance.now() };
    } catch (err) {
      // Say how to do without the rates when only /metrics fails (a proxy that hides it).
      if (!(err instanceof AdminError) || err.kind === 'unreachable' || err.kind === 'config') throw err;
      throw new AdminError(err.kind, `${err.message} (--interval 0 skips the rates, which need /metrics)`, err.status, err.code);
    }
  };
  const first = intervalMs > 0 ? scrape() : undefined;
  // Settled either way before anything throws, so no rejection is left unhandled.
  first?.catch(() => {});
  const read = endpoint === undefined
    ? client.endpoints<{ endpoints?: EndpointView[] }>().then((r) => ({ views: r.body.endpoints ?? [], date: r.date }))
    : client.endpoint<EndpointView>(endpoint).then((r) => ({ views: [r.body], date: r.date }));
  const { views, date } = await read;
  const mirrors = Promise.all(views.map((v) => (hasMirror(v) ? client.mirror<MirrorStatus>(String(v.name ?? '')) : undefined)));
  mirrors.catch(() => {});
  let rates: Rates | undefined;
  if (first) {
    const before = await first;
    await sleep(Math.max(0, intervalMs - (performance.now() - before.at)));
    const after = await scrape();
    rates = { before: before.counts, after: after.counts, seconds: (after.at - before.at) / 1000 };
  }
  const reports = await mirrors;
  return {
    admin_url: client.url,
    at: new Date(date ?? Date.now()).toISOString(),
    rate_window_s: rates ? round(rates.seconds, 3) : null,
    endpoints: views.map((v, i) => endpointStatus(v, reports[i]?.body ?? null, rates)),
  };
}

// --- The command ---

export const status: Command = {
  name: 'status',
  args: '[ENDPOINT] [--output table|json] [--interval MS]',
  summary: 'endpoints, deployments, instance health, req/s, errors and the shadow report, from the admin API',
  details: `Reads ${ADMIN_URL_ENV} (default ${DEFAULT_ADMIN_URL}) with ${ADMIN_KEY_ENV} (an admin key or an Entra token).\n`
    + 'Per endpoint: each deployment\'s traffic and mirror %, instances ready/total, ejected, in flight, req/s and\n'
    + '5xx rate; each instance (ready, ejected until, in flight, last probe); for an endpoint with mirror_traffic,\n'
    + 'the shadow report (mirrored, skipped, agreement, the fields that differ most, latency, shadow errors).\n'
    + `Rates: /metrics read twice --interval ms apart (default ${DEFAULT_INTERVAL_MS}; 0 skips them, "n/a"), counters of\n`
    + 'the one gateway process that answered. --output json prints the same data as one JSON document.\n'
    + 'Exit 0; 1 when the gateway cannot be reached, refuses the key or has no such endpoint; 2 on a usage error.',
  async run(args) {
    const a = parseArgs(args, { options: ['--output', '--interval'], positionals: { min: 0, max: 1 } });
    if (!a.ok) return usageError(status, a.error);
    const output = a.options.get('--output') ?? 'table';
    if (output !== 'table' && output !== 'json') return usageError(status, '--output must be table or json');
    const intervalText = a.options.get('--interval') ?? String(DEFAULT_INTERVAL_MS);
    const intervalMs = /^\d{1,5}$/.test(intervalText) ? Number(intervalText) : Number.NaN;
    if (!(intervalMs <= MAX_INTERVAL_MS)) return usageError(status, `--interval must be a whole number of milliseconds from 0 to ${MAX_INTERVAL_MS}`);
    const endpoint = a.positionals[0];
    let client: AdminClient;
    let doc: StatusDocument;
    try {
      client = AdminClient.fromEnv();
    } catch (err) {
      return fail(err);
    }
    try {
      doc = await gatherStatus(client, endpoint, intervalMs);
    } catch (err) {
      return fail(await explain(client, err, endpoint));
    }
    process.stdout.write(output === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : formatStatus(doc));
    return 0;
  },
};

/**
 * A 404 named `EndpointNotFound` has two causes: no such endpoint, or SWITCHYARD_ADMIN_URL
 * points at an invocation listener (which answers any /admin path with it, unauthenticated).
 * The admin listener always has the list, so reading it tells the two apart (and names the
 * endpoints there are).
 */
async function explain(client: AdminClient, err: unknown, endpoint: string | undefined): Promise<unknown> {
  if (!(err instanceof AdminError) || err.kind !== 'not_found' || err.code !== 'EndpointNotFound') return err;
  const wrongListener = new AdminError('not_found',
    `${client.url} answers like an invocation listener, not the admin listener: set ${ADMIN_URL_ENV} to the gateway's server.admin_listen (default ${DEFAULT_ADMIN_URL})`, 404);
  if (endpoint === undefined) return wrongListener;
  let names: string[];
  try {
    const list = await client.endpoints<{ endpoints?: EndpointView[] }>();
    names = (list.body.endpoints ?? []).map((v) => String(v.name ?? ''));
  } catch (e) {
    return e instanceof AdminError && e.kind === 'not_found' && e.code === 'EndpointNotFound' ? wrongListener : err;
  }
  return new AdminError('not_found',
    `no endpoint named ${JSON.stringify(endpoint)} on the gateway at ${client.url} (it has: ${names.length ? names.join(', ') : 'none'})`, 404, err.code);
}

function fail(err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`switchyard status: ${printable(message)}\n`);
  return err instanceof AdminError && err.kind === 'config' ? 2 : 1;
}
