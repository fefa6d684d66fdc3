/**
 * The bench's steady-load section (issue 13): load-tests/k6/steady.js's scenario driven by
 * the Node open-loop runner (load-tests/open-loop.ts) instead of k6 — the same shape, read
 * from the same file (load-tests/k6/steady.json): arrivals evenly spaced at `rate` a second
 * (k6's constant-arrival-rate), the demo's request body, and steady.js's thresholds (p99 under
 * `p99_ms`, error rate under `max_error_rate`) judged on the result. Against `direct` (the
 * backend alone) and `switchyard` (the bench's key-auth, 90/10-split gateway), rounds
 * interleaved, medians over rounds.
 *
 * The runs are shorter than steady.js's default minute (the bench's `--steady-duration`, 10 s
 * a round): enough samples for a p99 at 200 req/s, and the bench stays within minutes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HERE, fmt, median, runJsonChild, table } from './bench-lib.ts';
import type { Target } from './bench-targets.ts';
import type { OpenLoopResult, OpenLoopSpec } from './open-loop.ts';

export interface SteadyShape {
  readonly rate: number;
  readonly duration_s: number;
  readonly p99_ms: number;
  readonly max_error_rate: number;
}

/** steady.js's shape (load-tests/k6/steady.json). */
export function steadyShape(): SteadyShape {
  return JSON.parse(readFileSync(join(HERE, 'k6', 'steady.json'), 'utf8')) as SteadyShape;
}

/** steady.js's default BODY (load-tests/k6/lib.js). */
const K6_BODY = JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });
/** steady.js's maxVUs: k6 holds at most this many requests in flight, one connection each. */
const MAX_VUS = 200;

export interface SteadyOptions {
  readonly rounds: number;
  readonly durationS: number;
  readonly warmupS: number;
  /** Overrides the shape's rate (`--steady-rate`). */
  readonly rate?: number | undefined;
  readonly logDir: string;
  readonly progress: (line: string) => void;
}

/** One result per target and round; the markdown table plus the threshold verdicts. */
export async function steadySection(targets: readonly Target[], o: SteadyOptions): Promise<string> {
  const shape = steadyShape();
  const rate = o.rate ?? shape.rate;
  const runs = new Map<string, (OpenLoopResult | undefined)[]>(targets.map((t) => [t.name, new Array<OpenLoopResult | undefined>(o.rounds)]));
  for (let r = 0; r < o.rounds; r++) {
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + r) % targets.length]!;
      const spec: OpenLoopSpec = {
        url: t.url, method: 'POST', headers: { 'content-type': 'application/json', ...t.headers }, body: K6_BODY,
        rate, durationS: o.durationS, warmupS: o.warmupS, connections: MAX_VUS, drainS: 10, arrivals: 'uniform',
      };
      try {
        const res = await runJsonChild<OpenLoopResult>('steady', join(HERE, 'open-loop.ts'), spec, o.durationS + o.warmupS + 30, o.logDir);
        runs.get(t.name)![r] = res;
        o.progress(`  steady round ${r + 1}/${o.rounds} ${t.name.padEnd(12)} ${fmt(res.ok.rps, 0)} req/s  p50 ${fmt(res.ok.p50)} ms  p99 ${fmt(res.ok.p99)} ms  errors ${failures(res)}`);
      } catch (err) {
        o.progress(`  steady round ${r + 1}/${o.rounds} ${t.name}: FAILED ${String(err)}`);
      }
    }
  }
  const rows = targets.map((t) => {
    const rs = (runs.get(t.name) ?? []).filter((x): x is OpenLoopResult => x !== undefined);
    const m = (f: (x: OpenLoopResult) => number): number => median(rs.map(f));
    const sent = rs.reduce((s, x) => s + x.ok.n + failures(x), 0);
    const errorRate = sent > 0 ? rs.reduce((s, x) => s + failures(x), 0) / sent : NaN;
    const p99 = m((x) => x.ok.p99);
    const verdict = rs.length === 0 ? '–'
      : `p99 < ${shape.p99_ms} ${p99 < shape.p99_ms ? '✅' : '❌'}, errors < ${shape.max_error_rate * 100}% ${errorRate < shape.max_error_rate ? '✅' : '❌'}`;
    return [t.name, fmt(m((x) => x.offered), 0), fmt(m((x) => x.ok.rps), 0), fmt(m((x) => x.ok.p50)), fmt(p99), fmt(m((x) => x.ok.max)),
      fmt(errorRate * 100, 3), fmt(m((x) => x.lagP99)), verdict];
  });
  return table(['target', 'offered req/s', '2xx req/s', 'p50 ms', 'p99 ms', 'max ms', 'errors %', 'generator lag p99 ms', 'steady.js thresholds'], rows);
}

/** Calls that did not end in 2xx: refusals, other statuses, socket errors, unanswered. */
function failures(r: OpenLoopResult): number {
  return r.rejected.n + r.other + r.errors + r.unfinished;
}

/** The section's heading line. */
export function steadyHeading(o: Pick<SteadyOptions, 'rounds' | 'durationS' | 'rate'>): string {
  const shape = steadyShape();
  return `### Steady load: load-tests/k6/steady.js's scenario (${o.rate ?? shape.rate} req/s, evenly spaced arrivals, ${o.rounds} round(s) x ${o.durationS} s), Node open-loop runner`;
}
