import { setTimeout as sleep } from 'node:timers/promises';
import type { MirrorReport } from '../../mirror/report.ts';
import { ADMIN_KEY_ENV, ADMIN_URL_ENV, AdminClient, AdminError, DEFAULT_ADMIN_URL, printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';

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

// --- What the admin API answers (read defensively: the gateway may be another version) ---

interface ProbeView {
  readonly ok?: boolean;
  readonly at?: string;
  readonly status?: number;
  readonly error?: string;
}

interface InstanceView {
  readonly url?: string;
  readonly ready?: boolean;
  readonly ejected?: boolean;
  readonly ejected_until?: string | null;
  readonly in_flight?: number;
  readonly last_probe?: ProbeView | null;
}

interface EndpointView {
  readonly name?: string;
  readonly config?: {
    readonly traffic?: Readonly<Record<string, number>>;
    readonly mirror_traffic?: Readonly<Record<string, number>>;
    readonly deployments?: Readonly<Record<string, { readonly readiness_probe?: unknown }>>;
  };
  readonly state?: { readonly deployments?: Readonly<Record<string, { readonly instances?: readonly InstanceView[] }>> };
}

/** The shadow report as `GET /admin/endpoints/{name}/mirror` serves it. */
export type MirrorStatus = MirrorReport & { readonly in_flight?: number };

// --- The status document: what `--output json` prints and the table is drawn from ---

export interface InstanceStatus {
  readonly url: string;
  readonly ready: boolean;
  readonly ejected: boolean;
  readonly ejected_until: string | null;
  readonly in_flight: number;
  readonly last_probe: { readonly ok: boolean; readonly at: string; readonly status: number | null; readonly error: string | null } | null;
}

/** Requests in the rate window (null without one: `--interval 0`). */
export interface WindowCounts {
  readonly requests: number;
  /** Responses with a 5xx status. */
  readonly errors: number;
}

export interface DeploymentStatus {
  readonly name: string;
  /** Share of split traffic (`traffic`), 0 when absent. */
  readonly traffic_percent: number;
  /** Share of split traffic copied here as shadow traffic (`mirror_traffic`), 0 when absent. */
  readonly mirror_percent: number;
  readonly readiness_probe: boolean;
  readonly instances_total: number;
  /** Instances that take traffic: ready (probe) and not ejected, as `switchyard_instance_ready` counts them. */
  readonly instances_ready: number;
  readonly instances_ejected: number;
  readonly in_flight: number;
  /** Over the rate window; null without one, or when the gateway's counters restarted during it. */
  readonly requests_per_second: number | null;
  /** 5xx / all responses in the window; null without requests. */
  readonly error_rate: number | null;
  readonly window: WindowCounts | null;
  readonly instances: readonly InstanceStatus[];
}

export interface EndpointStatus {
  readonly name: string;
  /** Every request to the endpoint, including ones that reached no deployment. */
  readonly requests_per_second: number | null;
  readonly error_rate: number | null;
  readonly window: WindowCounts | null;
  /** Requests refused before a deployment was chosen (auth, network, rate limit, ...). */
  readonly not_routed_per_second: number | null;
  readonly deployments: readonly DeploymentStatus[];
  /** The shadow report, or null when the endpoint has no mirror. */
  readonly mirror: MirrorStatus | null;
}

export interface StatusDocument {
  readonly admin_url: string;
  /** The gateway's clock when it answered. */
  readonly at: string;
  /** Seconds the rates were measured over; null with `--interval 0`. */
  readonly rate_window_s: number | null;
  readonly endpoints: readonly EndpointStatus[];
}

// --- Counters from /metrics ---

/** `switchyard_requests_total` summed per endpoint and deployment (key: endpoint NUL deployment). */
export type RequestCounts = ReadonlyMap<string, WindowCounts>;

const key = (endpoint: string, deployment: string): string => `${endpoint}\0${deployment}`;
/** A shadow deployment's copies, kept apart from client requests (the endpoint's totals leave them out). */
const mirrorKey = (endpoint: string, deployment: string): string => `\0mirror\0${endpoint}\0${deployment}`;

/** The labels of one Prometheus sample (`{a="x",b="y\"z"}`), from `i` just past the `{`; undefined if malformed. */
function labels(line: string, start: number): { labels: Map<string, string>; end: number } | undefined {
  const out = new Map<string, string>();
  let i = start;
  for (;;) {
    while (line[i] === ' ' || line[i] === ',') i++;
    if (line[i] === '}') return { labels: out, end: i + 1 };
    const eq = line.indexOf('=', i);
    if (eq < 0 || line[eq + 1] !== '"') return undefined;
    const name = line.slice(i, eq).trim();
    let value = '';
    let j = eq + 2;
    for (; j < line.length && line[j] !== '"'; j++) {
      if (line[j] === '\\') {
        const n = line[++j];
        value += n === 'n' ? '\n' : n ?? '';
      } else {
        value += line[j];
      }
    }
    if (j >= line.length) return undefined;
    out.set(name, value);
    i = j + 1;
  }
}

const MIRROR_FAILED = new Set(['error', 'timeout']);

/**
 * Parse Prometheus text for `switchyard_requests_total`, and for
 * `switchyard_mirror_requests_total` (a shadow deployment's copies are not client requests:
 * its row counts the copies sent, and their errors and timeouts). Other lines are skipped.
 */
export function requestCounts(text: string): RequestCounts {
  const out = new Map<string, { requests: number; errors: number }>();
  const name = 'switchyard_requests_total{';
  const mirror = 'switchyard_mirror_requests_total{';
  for (const line of text.split('\n')) {
    const isMirror = line.startsWith(mirror);
    if (!isMirror && !line.startsWith(name)) continue;
    const l = labels(line, (isMirror ? mirror : name).length);
    if (!l) continue;
    const value = Number(line.slice(l.end).trim().split(/\s+/)[0]);
    if (!Number.isFinite(value)) continue;
    const outcome = l.labels.get('outcome') ?? '';
    // A skipped copy was never sent.
    if (isMirror && outcome.startsWith('skipped_')) continue;
    const k = (isMirror ? mirrorKey : key)(l.labels.get('endpoint') ?? '', l.labels.get('deployment') ?? '');
    const c = out.get(k) ?? { requests: 0, errors: 0 };
    c.requests += value;
    if (isMirror ? MIRROR_FAILED.has(outcome) : (l.labels.get('code') ?? '').startsWith('5')) c.errors += value;
    out.set(k, c);
  }
  return out;
}

interface Rates {
  readonly seconds: number;
  readonly before: RequestCounts;
  readonly after: RequestCounts;
}

interface Measured {
  readonly requests_per_second: number | null;
  readonly error_rate: number | null;
  readonly window: WindowCounts | null;
}

const NO_RATE: Measured = { requests_per_second: null, error_rate: null, window: null };
const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** The window's counts for the series `pick` selects; null rates when a counter went backwards (a restart). */
function measure(rates: Rates | undefined, pick: (k: string) => boolean): Measured {
  if (!rates) return NO_RATE;
  let requests = 0;
  let errors = 0;
  for (const [k, after] of rates.after) {
    if (!pick(k)) continue;
    const before = rates.before.get(k) ?? { requests: 0, errors: 0 };
    if (after.requests < before.requests || after.errors < before.errors) return NO_RATE;
    requests += after.requests - before.requests;
    errors += after.errors - before.errors;
  }
  for (const k of rates.before.keys()) if (pick(k) && !rates.after.has(k)) return NO_RATE;
  return {
    requests_per_second: round(requests / rates.seconds, 3),
    error_rate: requests === 0 ? null : round(errors / requests, 4),
    window: { requests, errors },
  };
}

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

// --- The table ---

type Align = 'l' | 'r';

/** Aligned columns; every cell made printable (names, URLs and field paths come from outside). */
function table(rows: readonly (readonly string[])[], align: readonly Align[], indent: string): string {
  const cells = rows.map((r) => r.map((c) => printable(c)));
  const widths = align.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => indent + r.map((c, i) => {
    const w = widths[i] ?? 0;
    return align[i] === 'r' ? c.padStart(w) : c.padEnd(w);
  }).join('  ').trimEnd()).join('\n') + '\n';
}

const NA = 'n/a';

export function formatRate(x: number | null): string {
  if (x === null) return NA;
  return x < 100 ? x.toFixed(1) : x.toFixed(0);
}

export function formatPercent(x: number | null): string {
  if (x === null) return NA;
  if (x > 0 && x < 0.0005) return '<0.1%';
  return `${(x * 100).toFixed(1)}%`;
}

function formatMs(x: number | null | undefined): string {
  if (x === null || x === undefined) return NA;
  return `${x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0)} ms`;
}

function seconds(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

function ago(iso: string, now: number): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '?';
  return now - t < 1000 ? 'just now' : `${seconds(now - t)} ago`;
}

function probeText(i: InstanceStatus, probe: boolean, now: number): string {
  const p = i.last_probe;
  if (!p) return probe ? 'not yet' : 'no probe';
  const what = p.ok ? `ok${p.status !== null ? ` ${p.status}` : ''}` : `failed ${p.status ?? p.error ?? ''}`.trimEnd();
  return `${what}, ${ago(p.at, now)}`;
}

function ejectedText(i: InstanceStatus, now: number): string {
  if (!i.ejected) return '-';
  if (i.ejected_until === null) return 'yes';
  const t = Date.parse(i.ejected_until);
  return Number.isNaN(t) ? i.ejected_until : `${i.ejected_until.slice(11, 19)}Z (${t > now ? `${seconds(t - now)} left` : 'ending'})`;
}

const clipText = (s: string, max: number): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

function mirrorText(m: MirrorStatus): string {
  const pct = (x: number | null | undefined): string => formatPercent(x ?? null);
  const o = m.outcomes;
  const lines: string[] = [];
  lines.push(printable(`  mirror → ${m.deployment ?? '?'} (${m.percent ?? '?'}% of split requests), since ${m.since}`));
  const skipped = m.skipped.skipped_budget + m.skipped.skipped_body;
  const rows: string[][] = [
    ['mirrored', `${m.mirrored}${m.in_flight !== undefined ? ` (${m.in_flight} in flight)` : ''}; skipped ${skipped} (budget full ${m.skipped.skipped_budget}, body over mirror_max_body_bytes ${m.skipped.skipped_body})`],
    ['agreement', m.compared === 0
      ? 'n/a (nothing compared yet)'
      : `${pct(m.agreement_rate)} of ${m.compared} compared (raw ${pct(m.agreement_rate_raw)}${m.noise_cancelled ? `; ${m.noise_cancelled} differed only on noisy fields` : ''})`],
    ['outcomes', `agree ${o.agree}, disagree ${o.disagree}, error ${o.error}, timeout ${o.timeout}, not compared ${o.not_compared}`
      + (Object.keys(m.not_compared_reasons).length ? ` (${Object.entries(m.not_compared_reasons).map(([r, n]) => `${r} ${n}`).join(', ')})` : '')],
    ['latency', `live p50 ${formatMs(m.latency.live.p50_ms)}, p99 ${formatMs(m.latency.live.p99_ms)}; shadow p50 ${formatMs(m.latency.shadow.p50_ms)}, p99 ${formatMs(m.latency.shadow.p99_ms)}`],
    ['shadow errors', `${pct(m.shadow_error_rate)} (error or timeout, of mirrored)${Object.keys(m.shadow_status).length ? `; answers ${Object.entries(m.shadow_status).map(([c, n]) => `${c} ${n}`).join(', ')}` : ''}`],
  ];
  if (m.noise_baseline) {
    const nb = m.noise_baseline;
    rows.push(['noise baseline', `${nb.pairs} live pairs (${nb.skipped_pairs} skipped); noisy: ${nb.noisy_fields.length ? nb.noisy_fields.map((f) => `${clipText(f.path, 60)} ${pct(f.rate)}`).join(', ') : 'none'}`]);
  }
  lines.push(table(rows, ['l', 'l'], '    ').trimEnd());
  if (m.fields.length) {
    lines.push('    fields that differ most:');
    lines.push(table([
      ['FIELD', 'DIFFERS IN', 'REQUESTS', 'NOISY', 'EXAMPLE (live → shadow)'],
      ...m.fields.map((f) => [
        clipText(f.path, 60),
        pct(f.rate),
        String(f.count),
        f.noisy ? `yes${f.live_noise_rate !== null ? ` (live ${pct(f.live_noise_rate)})` : ''}` : 'no',
        clipText(`${f.example.path === f.path ? '' : `${f.example.path}: `}${f.example.live} → ${f.example.shadow}`, 100),
      ]),
    ], ['l', 'r', 'r', 'l', 'l'], '      ').trimEnd());
    if (m.other_fields) lines.push(`      (${m.other_fields} more differences on fields not tracked)`);
  }
  return `${lines.join('\n')}\n`;
}

/** The readable form of a status document. */
export function formatStatus(doc: StatusDocument, now: number = Date.parse(doc.at)): string {
  const rated = doc.rate_window_s !== null;
  const window = rated ? `rates over ${doc.rate_window_s.toFixed(1)} s of the counters of the process that answered` : 'rates skipped (--interval 0)';
  const out: string[] = [`gateway ${doc.admin_url} · ${window}\n`];
  if (doc.endpoints.length === 0) out.push('no endpoints\n');
  for (const ep of doc.endpoints) {
    const head = `endpoint ${ep.name}${rated ? `: ${formatRate(ep.requests_per_second)} req/s, 5xx ${formatPercent(ep.error_rate)}` : ''}`
      + (ep.not_routed_per_second ? ` (${formatRate(ep.not_routed_per_second)} req/s refused before reaching a deployment)` : '');
    const deployments = table([
      ['DEPLOYMENT', 'TRAFFIC', 'MIRROR', 'READY', 'EJECTED', 'IN FLIGHT', 'REQ/S', '5XX RATE'],
      ...ep.deployments.map((d) => [
        d.name,
        `${d.traffic_percent}%`,
        d.mirror_percent ? `${d.mirror_percent}%` : '-',
        `${d.instances_ready}/${d.instances_total}`,
        String(d.instances_ejected),
        String(d.in_flight),
        formatRate(d.requests_per_second),
        formatPercent(d.error_rate),
      ]),
    ], ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'], '  ');
    const instances = table([
      ['DEPLOYMENT', 'INSTANCE', 'READY', 'EJECTED UNTIL', 'IN FLIGHT', 'LAST PROBE'],
      ...ep.deployments.flatMap((d) => d.instances.map((i) => [
        d.name,
        i.url,
        i.ready ? 'yes' : 'no',
        ejectedText(i, now),
        String(i.in_flight),
        probeText(i, d.readiness_probe, now),
      ])),
    ], ['l', 'l', 'l', 'l', 'r', 'l'], '  ');
    out.push(`\n${printable(head)}\n${deployments}\n${instances}${ep.mirror ? `\n${mirrorText(ep.mirror)}` : ''}`);
  }
  return out.join('');
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
