/**
 * The figures of load-tests/live-edit.ts from its records: per window, the load's latency and
 * failures; per change and replica, when the replica started serving it. Pure: no I/O, so it
 * can be checked on records made up by hand.
 */
import { percentile } from './load-runner.ts';
import type { LoadRecord } from './live-edit-load.ts';

/** The periods (performance.now() from, to) of one kind: quiet, reload, edit. */
export interface Window { readonly name: string; readonly periods: [number, number][] }

export interface Change {
  readonly kind: 'edit' | 'reload';
  /** performance.now() when the PATCH was sent, or the files written. */
  readonly sent: number;
  /** When the PATCH's answer came back (for a reload: when the files were written). */
  readonly answered: number;
  /** The deployment that takes all traffic after it. */
  readonly to: string;
  readonly status: number;
}

export interface WindowStats {
  name: string; periods: number; requests: number; non2xx: number; errors: number; p50: number; p99: number; max: number;
  /** The p99 of each period on its own, in order (round by round). */
  periodP99: number[];
}
/** Delays in ms from the change's answer (the PATCH's 200, the file write), and from its start (the PATCH sent). */
export interface Propagation {
  label: string; n: number; median: number; max: number; missed: number; delays: number[];
  fromSent: { median: number; max: number };
}

const TARGETS = ['A', 'B'];

const okLatencies = (rs: readonly LoadRecord[]): Float64Array =>
  Float64Array.from(rs.filter((r) => r.status >= 200 && r.status < 300).map((r) => r.ms)).sort();

function windowStats(records: readonly LoadRecord[], w: Window): WindowStats {
  const inside = records.filter((r) => w.periods.some(([from, to]) => r.sent >= from && r.sent < to));
  const ok = okLatencies(inside);
  return {
    name: w.name,
    periods: w.periods.length,
    requests: inside.length,
    non2xx: inside.filter((r) => r.status !== 0 && (r.status < 200 || r.status > 299)).length,
    errors: inside.filter((r) => r.status === 0).length,
    p50: percentile(ok, 50),
    p99: percentile(ok, 99),
    max: ok.length > 0 ? ok[ok.length - 1]! : Number.NaN,
    periodP99: w.periods.map(([from, to]) => percentile(okLatencies(inside.filter((r) => r.sent >= from && r.sent < to)), 99)),
  };
}

/** Median over rounds of a's period p99 over b's (round i's periods paired). */
export function pairedRatio(a: WindowStats, b: WindowStats): number {
  const n = Math.min(a.periodP99.length, b.periodP99.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) if (b.periodP99[i]! > 0) ratios.push(a.periodP99[i]! / b.periodP99[i]!);
  return median(ratios.filter(Number.isFinite));
}

/**
 * When `target` served change `c`: among its 2xx answers to requests sent between `c.sent` and
 * `until`, the first one by `c.to` after the last one by anything else: its send time.
 * Undefined when no such answer came (not served before the next change).
 */
export function servedAfter(records: readonly LoadRecord[], target: number, c: Change, until: number): number | undefined {
  // Records are pushed as answers arrive: put them in send order first.
  const mine = records.filter((r) => r.target === target && r.sent >= c.sent && r.sent < until && r.status >= 200 && r.status < 300)
    .sort((x, y) => x.sent - y.sent);
  let served: number | undefined;
  for (const r of mine) {
    if (r.deployment !== c.to) served = undefined;
    else served ??= r.sent;
  }
  return served;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Analysis {
  ok: boolean;
  windows: WindowStats[];
  propagation: Propagation[];
  patches: { n: number; failed: number; median_ms: number; max_ms: number };
  verdicts: string[];
}

export function analyse(records: readonly LoadRecord[], windows: readonly Window[], changes: readonly Change[], o: { rate: number; limitMs: number }): Analysis {
  const stats = windows.map((w) => windowStats(records, w));
  const end = Math.max(...windows.flatMap((w) => w.periods.map(([, to]) => to)));
  const propagation: Propagation[] = [];
  for (const [kind, what] of [['edit', 'PATCH on A'], ['reload', 'file write']] as const) {
    for (const target of [1, 0]) {
      const list = changes.filter((c) => c.kind === kind && c.status === 200);
      if (list.length === 0) continue;
      const delays: number[] = [];
      const fromSent: number[] = [];
      let missed = 0;
      for (const c of list) {
        const next = changes.find((x) => x.sent > c.sent);
        const at = servedAfter(records, target, c, next ? next.sent : end);
        if (at === undefined) {
          missed++;
          continue;
        }
        delays.push(at - c.answered);
        fromSent.push(at - c.sent);
      }
      const max = (xs: number[]): number => (xs.length ? Math.max(...xs) : Number.NaN);
      propagation.push({
        label: `${what} → ${TARGETS[target]} serving`, n: list.length, median: median(delays), max: max(delays), missed, delays,
        fromSent: { median: median(fromSent), max: max(fromSent) },
      });
    }
  }
  const edits = changes.filter((c) => c.kind === 'edit');
  const patchMs = edits.map((c) => c.answered - c.sent);
  const patches = { n: edits.length, failed: edits.filter((c) => c.status !== 200).length, median_ms: median(patchMs), max_ms: patchMs.length ? Math.max(...patchMs) : Number.NaN };

  const verdicts: string[] = [];
  const failures = stats.reduce((s, w) => s + w.non2xx + w.errors, 0);
  verdicts.push(failures === 0 ? '✅ no non-2xx answer and no socket error in any window' : `❌ ${failures} requests failed (non-2xx or socket error)`);
  const b = propagation.find((p) => p.label === 'PATCH on A → B serving');
  // Judged from the PATCH's start: stricter than from its 200, and what "within 1 s of the edit" means to a caller.
  const bOk = !!b && b.missed === 0 && patches.failed === 0 && b.fromSent.max <= o.limitMs;
  verdicts.push(b
    ? `${bOk ? '✅' : '❌'} PATCH on A → B serving: from the 200 median ${b.median.toFixed(1)} ms, max ${b.max.toFixed(1)} ms; `
      + `from the PATCH sent median ${b.fromSent.median.toFixed(1)} ms, max ${b.fromSent.max.toFixed(1)} ms, over ${b.n - b.missed} edits `
      + `(limit ${o.limitMs} ms from the PATCH sent; ${b.missed} not served; ${patches.failed} PATCHes failed)`
    : '❌ no PATCH succeeded');
  verdicts.push(`PATCH round trip on A: median ${patches.median_ms.toFixed(1)} ms, max ${patches.max_ms.toFixed(1)} ms`);
  const rel = stats.find((w) => w.name === 'reload');
  const ed = stats.find((w) => w.name === 'edit');
  const quiet = stats.find((w) => w.name === 'quiet');
  if (rel && ed && Number.isFinite(rel.p99) && Number.isFinite(ed.p99)) {
    // Paired per round, then the median: a burst of outside load that hits one period moves
    // one ratio, not the verdict (the pooled p99s are shown too, but swing with such bursts).
    const ratio = pairedRatio(ed, rel);
    verdicts.push(`${ratio <= 1.25 ? '✅' : '⚠️'} latency after edits vs after file reloads: p99 per round, edit ÷ reload, median over rounds `
      + `${ratio.toFixed(2)}x (within a reload's: ≤ 1.25x)${quiet ? `; edit ÷ quiet ${pairedRatio(ed, quiet).toFixed(2)}x, reload ÷ quiet ${pairedRatio(rel, quiet).toFixed(2)}x` : ''}; `
      + `pooled p99: edits ${ed.p99.toFixed(2)} ms, reloads ${rel.p99.toFixed(2)} ms${quiet && Number.isFinite(quiet.p99) ? `, nothing changing ${quiet.p99.toFixed(2)} ms` : ''}`);
  }
  return { ok: failures === 0 && bOk, windows: stats, propagation, patches, verdicts };
}
