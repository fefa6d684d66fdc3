import { printable } from '../admin-client.ts';
import type { InstanceStatus, MirrorStatus, StatusDocument } from './status-document.ts';

/** The readable table of `switchyard status`. */

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
