import type { WindowCounts } from './status-document.ts';

/** Request counters from the gateway's `/metrics`, and rates over the window between two reads. */

// --- Counters from /metrics ---

/** `switchyard_requests_total` summed per endpoint and deployment (key: endpoint NUL deployment). */
export type RequestCounts = ReadonlyMap<string, WindowCounts>;

export const key = (endpoint: string, deployment: string): string => `${endpoint}\0${deployment}`;
/** A shadow deployment's copies, kept apart from client requests (the endpoint's totals leave them out). */
export const mirrorKey = (endpoint: string, deployment: string): string => `\0mirror\0${endpoint}\0${deployment}`;

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

export interface Rates {
  readonly seconds: number;
  readonly before: RequestCounts;
  readonly after: RequestCounts;
}

export interface Measured {
  readonly requests_per_second: number | null;
  readonly error_rate: number | null;
  readonly window: WindowCounts | null;
}

const NO_RATE: Measured = { requests_per_second: null, error_rate: null, window: null };
export const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** The window's counts for the series `pick` selects; null rates when a counter went backwards (a restart). */
export function measure(rates: Rates | undefined, pick: (k: string) => boolean): Measured {
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
