import { createHmac, randomBytes } from 'node:crypto';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { systemClock, type Clock } from '../clock.ts';
import { CONTENT_TYPE_PATH, STATUS_PATH, normalisePath } from './paths.ts';
import { DEFAULT_MAX_PATHS, cancelNoise, type NoiseModel } from './noise.ts';
import type { Comparison, MirrorOutcome } from './types.ts';

/**
 * What an ML engineer reads about a mirror (`GET /admin/endpoints/{name}/mirror`,
 * `switchyard status {name}`), accumulated since the mirror was set. Pure: no I/O; the
 * clock is injected. One MirrorStats per endpoint and mirror setting, kept across swaps.
 *
 * Definitions:
 *  - mirrored: copies sent (agree + disagree + error + timeout + not_compared); skipped
 *    copies (budget full, body over the cap) are counted apart and never sent.
 *  - outcomes are after noise cancellation, judged when the report is made, with the noise
 *    model as it is then: a disagreement only on fields noisy now is an `agree` (also counted
 *    in `noise_cancelled`), however early it was compared. To re-judge without keeping
 *    answers, each disagreement is kept as its *signature*, the set of its differing fields
 *    (normalised paths), with a count: at most MAX_SIGNATURES signatures of at most
 *    MAX_SIGNATURE_CHARS characters. A disagreement that cannot be re-judged stays one, and
 *    is counted in `not_rejudged`: its comparison was truncated (a differing field may be
 *    missing), its signature is longer, or it came once MAX_SIGNATURES were kept.
 *    `record()`'s return value (the `switchyard_mirror_requests_total` metric) is the verdict
 *    at the time of the comparison, so the metric's early disagreements stay disagreements.
 *  - agreement_rate = agree / (agree + disagree), noise-cancelled agreements included;
 *    agreement_rate_raw = the same without noise cancellation. null before any comparison.
 *  - fields: per field (normalised path), the number of compared requests (agree + disagree)
 *    in which it differed, counted once per request, and that count over compared requests.
 *    Real differences first, then noisy ones, each by count (ties by path); top 10.
 *  - shadow_error_rate = (error + timeout) / mirrored.
 *  - latency: p50/p99 in ms of every mirrored answer that reports a latency (a timed-out
 *    shadow's latency is its timeout), from HDR histograms at microsecond resolution.
 *
 * Redaction (`redactValue`): examples never hold model output. Numbers are kept (integers of
 * more than 6 digits become `number(N digits)`: account or phone numbers), as are booleans
 * and null; a string becomes `string(N chars, #tag)` where the tag is 8 hex digits of an
 * HMAC keyed by a random per-report key — equal strings show equal tags within one report,
 * but the tag cannot be reversed or checked against a guess from outside the process;
 * objects and arrays become `object(N keys)` / `array(N)`; a value cut for length shows only
 * its type. Paths are compare.ts's: indices, and keys that look like field names, are shown;
 * any other key (secret-looking, long) is a length and a per-process tag, and a path is at
 * most 256 characters.
 */

export interface MirrorSetting {
  readonly endpoint?: string | undefined;
  /** The shadow deployment. */
  readonly deployment?: string | undefined;
  readonly percent?: number | undefined;
}

export interface MirrorStatsOptions {
  /** Fields tracked at most (default 1000); differences on further fields count as `other_fields`. */
  readonly maxPaths?: number;
  /** Fields in the report (default 10). */
  readonly topFields?: number;
  /** HMAC key for string tags (default: random, per MirrorStats). */
  readonly redactionKey?: Uint8Array;
}

/** One mirrored request as the mirror saw it. */
export interface MirrorResult {
  /** Needed for skipped copies and when there is no comparison; else derived from `comparison`. */
  readonly outcome?: MirrorOutcome | undefined;
  /** compareAnswers' raw verdict (noise is cancelled here, with the model given to record). */
  readonly comparison?: Comparison | undefined;
  readonly liveLatencyMs?: number | undefined;
  readonly shadowLatencyMs?: number | undefined;
  /** 0 when the shadow never answered. */
  readonly shadowStatus?: number | undefined;
}

export interface LatencySummary {
  /** Answers with a latency. */
  readonly count: number;
  readonly p50_ms: number | null;
  readonly p99_ms: number | null;
}

export interface FieldReport {
  /** Normalised path (`$.predictions[*].label`), or `$status` / `$content_type`. */
  readonly path: string;
  /** Compared requests in which this field differed. */
  readonly count: number;
  /** count / compared requests. */
  readonly rate: number;
  /** Live differs from itself here (noise baseline); such differences are not disagreements. */
  readonly noisy: boolean;
  /** Live's own difference rate on this field, when there is a noise baseline. */
  readonly live_noise_rate: number | null;
  /** The first difference seen, redacted. */
  readonly example: { readonly path: string; readonly live: string; readonly shadow: string };
}

export interface MirrorReport {
  readonly endpoint: string | null;
  readonly deployment: string | null;
  readonly percent: number | null;
  /** When the mirror was set (ISO 8601). */
  readonly since: string;
  readonly mirrored: number;
  readonly skipped: { readonly skipped_budget: number; readonly skipped_body: number };
  readonly outcomes: { readonly agree: number; readonly disagree: number; readonly error: number; readonly timeout: number; readonly not_compared: number };
  /** Of `outcomes.agree`: disagreements only on noisy fields. */
  readonly noise_cancelled: number;
  /** Of `outcomes.disagree`: disagreements kept as such whatever the noise model learns (see the header). */
  readonly not_rejudged: number;
  readonly not_compared_reasons: Readonly<Record<string, number>>;
  /** agree + disagree. */
  readonly compared: number;
  readonly agreement_rate: number | null;
  readonly agreement_rate_raw: number | null;
  readonly fields: readonly FieldReport[];
  /** Field differences not tracked once `maxPaths` fields were. */
  readonly other_fields: number;
  readonly latency: { readonly live: LatencySummary; readonly shadow: LatencySummary };
  readonly shadow_error_rate: number | null;
  /** Shadow answers by status class (`2xx`, `5xx`; `none` when it never answered). */
  readonly shadow_status: Readonly<Record<string, number>>;
  readonly noise_baseline: {
    readonly pairs: number;
    readonly skipped_pairs: number;
    /** Pairs whose two live answers differed over the whole body: nothing field-level learned. */
    readonly live_nondeterministic: number;
    /** Second live copies not sent because the live deployment had no free slot then. */
    readonly skipped_live_busy: number;
    readonly noisy_fields: readonly { readonly path: string; readonly rate: number }[];
  } | null;
}

interface FieldStat {
  count: number;
  readonly example: { readonly path: string; readonly live: string; readonly shadow: string };
}

type Compared = Exclude<MirrorOutcome, 'skipped_budget' | 'skipped_body'>;

const MAX_REASONS = 20;
/** Distinct sets of differing fields kept for re-judging disagreements. */
export const MAX_SIGNATURES = 1000;
/** Longest signature (its paths joined by newlines) kept. */
export const MAX_SIGNATURE_CHARS = 2048;
/** 1 µs … 1 h, in µs. */
const HIST_MAX_US = 3_600_000_000;

const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;
const ratio = (n: number, d: number): number | null => (d === 0 ? null : round4(n / d));

const MIME = /^"[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+"$/;

/**
 * A diff value (JSON text, possibly cut, '' when absent) made safe to show; see the header.
 * `path` lets the status and content-type pseudo-paths keep their (non-secret) values.
 */
export function redactValue(text: string, key: Uint8Array, path = '$'): string {
  if (text === '') return 'absent';
  if (path === STATUS_PATH && /^\d{1,3}$/.test(text)) return text;
  if (path === CONTENT_TYPE_PATH && MIME.test(text)) return text;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    // Cut for length (or not JSON at all): its type only.
    const c = text[0];
    return c === '"' ? 'string(long)' : c === '{' ? 'object(…)' : c === '[' ? 'array(…)' : 'value(…)';
  }
  if (v === null || typeof v === 'boolean') return String(v);
  if (typeof v === 'number') {
    return Number.isInteger(v) && Math.abs(v) >= 1e6 ? `number(${String(Math.abs(v)).length} digits)` : String(v);
  }
  if (typeof v === 'string') return `string(${v.length} chars, #${createHmac('sha256', key).update(v).digest('hex').slice(0, 8)})`;
  if (Array.isArray(v)) return `array(${v.length})`;
  return `object(${Object.keys(v as object).length} keys)`;
}

function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: HIST_MAX_US, figures: 3 });
}

function recordMs(h: RecordableHistogram, ms: number | undefined): void {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return;
  h.record(Math.min(HIST_MAX_US, Math.max(1, Math.round(ms * 1000))));
}

function summary(h: RecordableHistogram): LatencySummary {
  if (h.count === 0) return { count: 0, p50_ms: null, p99_ms: null };
  const ms = (us: number): number => Math.round(us) / 1000;
  return { count: h.count, p50_ms: ms(h.percentile(50)), p99_ms: ms(h.percentile(99)) };
}

function byPath(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class MirrorStats {
  readonly #setting: MirrorSetting;
  readonly #since: string;
  readonly #maxPaths: number;
  readonly #top: number;
  readonly #key: Uint8Array;
  /** agree and disagree as compared (raw); the report re-judges disagreements from #signatures. */
  readonly #outcomes = { agree: 0, disagree: 0, error: 0, timeout: 0, not_compared: 0 };
  /** Signature (sorted normalised paths joined by `\n`) → disagreements with it. */
  readonly #signatures = new Map<string, number>();
  #notRejudged = 0;
  readonly #skipped = { skipped_budget: 0, skipped_body: 0 };
  readonly #reasons = new Map<string, number>();
  readonly #fields = new Map<string, FieldStat>();
  readonly #status = new Map<string, number>();
  readonly #live = newHistogram();
  readonly #shadow = newHistogram();
  #other = 0;
  #noise: NoiseModel | undefined;

  constructor(clock: Clock = systemClock, setting: MirrorSetting = {}, opts: MirrorStatsOptions = {}) {
    this.#setting = setting;
    this.#since = new Date(clock()).toISOString();
    this.#maxPaths = opts.maxPaths ?? DEFAULT_MAX_PATHS;
    this.#top = opts.topFields ?? 10;
    this.#key = opts.redactionKey ?? randomBytes(32);
  }

  /** A copy not sent: the in-flight budget was full, or the body over the cap. */
  skipped(reason: 'skipped_budget' | 'skipped_body'): void {
    this.#skipped[reason]++;
  }

  /**
   * Count one mirrored request (or a skipped one, by `outcome`). The noise model, when given,
   * is the one the report judges with (the latest one given). Returns the outcome to count in
   * `switchyard_mirror_requests_total`: noise cancelled with the model as it is now, a
   * point-in-time verdict (the report re-judges disagreements when it is made).
   */
  record(result: MirrorResult, noise: NoiseModel | undefined): MirrorOutcome {
    if (result.outcome === 'skipped_budget' || result.outcome === 'skipped_body') {
      this.skipped(result.outcome);
      return result.outcome;
    }
    if (noise !== undefined) this.#noise = noise;
    let outcome: Compared;
    const c = result.comparison;
    if (c !== undefined) {
      outcome = cancelNoise(c, noise).outcome;
      if (c.outcome === 'not_compared') this.#reason(c.reason ?? 'unknown');
      if (c.outcome === 'agree' || c.outcome === 'disagree') this.#countFields(c);
      if (c.outcome === 'disagree') this.#signature(c);
      this.#outcomes[c.outcome]++;
    } else {
      outcome = result.outcome ?? 'not_compared';
      if (outcome === 'not_compared') this.#reason('unknown');
      if (outcome === 'disagree') this.#notRejudged++;
      this.#outcomes[outcome]++;
    }
    recordMs(this.#live, result.liveLatencyMs);
    recordMs(this.#shadow, result.shadowLatencyMs);
    if (result.shadowStatus !== undefined) {
      const cls = result.shadowStatus > 0 ? `${Math.floor(result.shadowStatus / 100)}xx` : 'none';
      this.#status.set(cls, (this.#status.get(cls) ?? 0) + 1);
    }
    return outcome;
  }

  #reason(reason: string): void {
    const r = this.#reasons.has(reason) || this.#reasons.size < MAX_REASONS ? reason : 'other';
    this.#reasons.set(r, (this.#reasons.get(r) ?? 0) + 1);
  }

  /** Keep a disagreement's set of differing fields, to judge it again at report time. */
  #signature(c: Comparison): void {
    if (c.truncated === true) {
      this.#notRejudged++;
      return;
    }
    const sig = [...new Set(c.diffs.map((d) => normalisePath(d.path)))].sort().join('\n');
    const n = this.#signatures.get(sig);
    if (n !== undefined) this.#signatures.set(sig, n + 1);
    else if (sig.length > 0 && sig.length <= MAX_SIGNATURE_CHARS && this.#signatures.size < MAX_SIGNATURES) this.#signatures.set(sig, 1);
    else this.#notRejudged++;
  }

  /** Disagreements whose every differing field is noisy now. */
  #cancelled(noise: NoiseModel | undefined): number {
    if (noise === undefined || noise.pairs === 0) return 0;
    let n = 0;
    for (const [sig, count] of this.#signatures) {
      if (sig.split('\n').every((p) => noise.isNoisy(p))) n += count;
    }
    return n;
  }

  #countFields(c: Comparison): void {
    const seen = new Set<string>();
    for (const d of c.diffs) {
      const field = normalisePath(d.path);
      if (seen.has(field)) continue;
      seen.add(field);
      const stat = this.#fields.get(field);
      if (stat !== undefined) {
        stat.count++;
      } else if (this.#fields.size < this.#maxPaths) {
        // Redacted now: no model output is kept in memory past this call.
        this.#fields.set(field, {
          count: 1,
          example: { path: d.path, live: redactValue(d.live, this.#key, d.path), shadow: redactValue(d.shadow, this.#key, d.path) },
        });
      } else {
        this.#other++;
      }
    }
  }

  /** The report (snake_case JSON), `setting` overriding the one given at construction. */
  report(setting: MirrorSetting = {}): MirrorReport {
    const s = { ...this.#setting, ...setting };
    const noise = this.#noise;
    const raw = this.#outcomes;
    const cancelled = this.#cancelled(noise);
    const o = { ...raw, agree: raw.agree + cancelled, disagree: raw.disagree - cancelled };
    const mirrored = o.agree + o.disagree + o.error + o.timeout + o.not_compared;
    const compared = o.agree + o.disagree;
    const fields = [...this.#fields].map(([path, f]) => ({ path, f, noisy: noise?.isNoisy(path) ?? false }));
    fields.sort((a, b) => Number(a.noisy) - Number(b.noisy) || b.f.count - a.f.count || byPath(a.path, b.path));
    return {
      endpoint: s.endpoint ?? null,
      deployment: s.deployment ?? null,
      percent: s.percent ?? null,
      since: this.#since,
      mirrored,
      skipped: { ...this.#skipped },
      outcomes: o,
      noise_cancelled: cancelled,
      not_rejudged: this.#notRejudged,
      not_compared_reasons: Object.fromEntries(this.#reasons),
      compared,
      agreement_rate: ratio(o.agree, compared),
      agreement_rate_raw: ratio(raw.agree, compared),
      fields: fields.slice(0, this.#top).map(({ path, f, noisy }) => ({
        path,
        count: f.count,
        rate: ratio(f.count, compared) ?? 0,
        noisy,
        live_noise_rate: noise ? round4(noise.rate(path)) : null,
        example: f.example,
      })),
      other_fields: this.#other,
      latency: { live: summary(this.#live), shadow: summary(this.#shadow) },
      shadow_error_rate: ratio(o.error + o.timeout, mirrored),
      shadow_status: Object.fromEntries(this.#status),
      noise_baseline: noise
        ? {
          pairs: noise.pairs,
          skipped_pairs: noise.skippedPairs,
          live_nondeterministic: noise.liveNondeterministic,
          skipped_live_busy: noise.liveBusy,
          noisy_fields: noise.noisyFields().slice(0, this.#top).map((n) => ({ path: n.path, rate: round4(n.rate) })),
        }
        : null,
    };
  }
}

/** A sampled log line about one comparison: field paths only, never values. */
export interface DisagreementLogLine {
  readonly outcome: Comparison['outcome'];
  /** Differing fields that are not noisy (normalised, at most 10). */
  readonly fields: readonly string[];
  /** Differing fields that are noisy (normalised, at most 10; empty without a noise model). */
  readonly noisy_fields: readonly string[];
  /** Differing fields left out of the two lists (past 10 each). */
  readonly more_fields: number;
  /** More fields differed than the comparison recorded. */
  readonly truncated: boolean;
  readonly reason?: string;
}

export const LOG_FIELDS = 10;

/** The fields of a log line for a comparison (the caller samples and writes it). */
export function disagreementLogLine(c: Comparison, noise?: NoiseModel): DisagreementLogLine {
  const v = cancelNoise(c, noise);
  const distinct = (ds: readonly { path: string }[]): string[] => [...new Set(ds.map((d) => normalisePath(d.path)))];
  const real = distinct(v.real);
  const noisy = distinct(v.noisy);
  const more = Math.max(0, real.length - LOG_FIELDS) + Math.max(0, noisy.length - LOG_FIELDS);
  return {
    outcome: v.outcome,
    fields: real.slice(0, LOG_FIELDS),
    noisy_fields: noisy.slice(0, LOG_FIELDS),
    more_fields: more,
    truncated: c.truncated === true,
    ...(c.reason !== undefined ? { reason: c.reason } : {}),
  };
}
