import { BODY_PATH, CONTENT_TYPE_PATH, LENGTH_SEGMENT, MAX_PATH_CHARS, STATUS_PATH, capPath, keySegment, normalisePath } from './paths.ts';
import type { CapturedAnswer, Comparison, FieldDiff } from './types.ts';

/**
 * The verdict on a live/shadow pair of answers (issue 11). Pure: no I/O, no clock (one random
 * key per process, in paths.ts, tags unreadable keys in paths; see Paths below).
 *
 * Rules, in order:
 *  1. Shadow timed out → `timeout`; shadow failed otherwise (or never answered, status 0) → `error`.
 *  2. Live failed (status 0 or a failure) → `not_compared` (`live_failed`).
 *  3. Status classes differ (2xx vs 4xx vs 5xx…) → `disagree`, one diff at the pseudo-path
 *     `$status` (values: the two statuses). Same class (200 vs 201) goes on to the bodies.
 *  4. An answer with a `Content-Encoding` other than `identity` (either side) → `not_compared`
 *     (`encoded_body`): the capture keeps the bytes as sent and does not decode them, so two
 *     gzip bodies cannot be compared field by field (and the pair is never learned as noise).
 *  5. A body not captured (over `mirror_max_body_bytes`, or incomplete) → `not_compared`
 *     (`live_body_not_captured` / `shadow_body_not_captured`).
 *  6. Byte-identical bodies → `agree` (whatever the content type).
 *  7. The kind of body is taken from `content-type` (never sniffed): JSON
 *     (`application/json`, `…+json`), event stream (`text/event-stream`), or other. Different
 *     kinds → `disagree` at the pseudo-path `$content_type`.
 *  8. JSON: both parsed and compared deeply — objects by key (order-insensitive), arrays by
 *     index (a length difference is one diff at the array's length pseudo-segment `[#]`,
 *     `$.xs[#]`, values the two lengths, and the common prefix is still compared),
 *     strings/booleans/null exactly, numbers within a relative tolerance unless both are
 *     integers (`numbersEqual`). A side that is not valid JSON → `disagree` at `$` (both
 *     invalid: the bytes already differ, so also `$`).
 *  9. Event stream: the sequence of `data:` payloads (one per event, multi-line data joined
 *     by `\n`; `event:`/`id:`/`retry:` and comments ignored). Another number of events is a
 *     diff at `$[#]` (values the two counts); payload `i` is compared at `$[i]`, as JSON when
 *     both sides parse, else exactly (`[DONE]`).
 * 10. Other bodies: byte for byte; a difference is one diff at `$`.
 *
 * `$` alone means "the whole body differs" and is never learned as noise (noise.ts).
 *
 * Paths (written by paths.ts): `$` is the body; `[3]` an array index; `[#]` an array's (or event stream's) length;
 * a key is shown only when it looks like a field name (`readableKey`: at most 32 characters
 * of `[A-Za-z_][A-Za-z0-9_.-]*` with no run of 8+ letters-and-digits mixing both and no run
 * of 7+ digits, or a small integer of at most 6 digits): `.key` when it is an identifier,
 * `["key"]` otherwise (`["content-type"]`, `["0"]`). Any other key (secret-looking, long,
 * with spaces or symbols) is shown as `["<key N chars #tag>"]`, the tag being 8 hex digits of
 * an HMAC-SHA256 of the key under a random per-process key: equal keys get equal tags, in every
 * comparison, the noise model and the report, but a tag cannot be reversed or checked against
 * a guess from outside the process. A path longer than MAX_PATH_CHARS is cut at a segment
 * boundary, normalised, and ends in `…#tag` (the tag of the whole normalised path), so it stays
 * one distinct field. `normalisePath` turns indices into `[*]` for counting.
 * Values in a diff are JSON text cut to VALUE_PREVIEW_CHARS (ending in `…` when cut); an
 * empty string means "absent on this side".
 */

/** Diffs recorded as found; past this, only the first diff of each new (normalised) field. */
export const MAX_DIFFS = 50;
/** Never more diffs than this in one comparison; past it the comparison is `truncated`. */
export const MAX_FIELD_DIFFS = 100;
/** Length of a value's JSON text in a diff, `…` included when cut. */
export const VALUE_PREVIEW_CHARS = 80;

/** `reason` of a `not_compared` comparison. */
export const NOT_COMPARED = {
  liveFailed: 'live_failed',
  liveBody: 'live_body_not_captured',
  shadowBody: 'shadow_body_not_captured',
  encoded: 'encoded_body',
} as const;

export interface CompareOptions {
  /** Relative tolerance for numbers (`mirror_compare.number_tolerance`, default 1e-6). */
  readonly numberTolerance: number;
}

export type BodyKind = 'json' | 'event-stream' | 'other';

/** How a body is compared, from its (lower-cased, parameter-less) content type. */
export function bodyKind(contentType: string | undefined): BodyKind {
  if (contentType === undefined) return 'other';
  if (contentType === 'application/json' || contentType.endsWith('+json')) return 'json';
  if (contentType === 'text/event-stream') return 'event-stream';
  return 'other';
}

/**
 * Numbers agree when |a − b| ≤ tol × max(|a|, |b|): relative, so 0 equals only 0 (and −0),
 * and a tolerance of 0 means exactly equal. Two integers (both safe integers) must be equal:
 * the tolerance is for floating-point jitter, and counts, class indices, ids and epoch
 * timestamps are exact (1e-6 of a millisecond timestamp would be half an hour).
 */
export function numbersEqual(a: number, b: number, tol: number): boolean {
  if (a === b) return true;
  if (Number.isSafeInteger(a) && Number.isSafeInteger(b)) return false;
  return Math.abs(a - b) <= tol * Math.max(Math.abs(a), Math.abs(b));
}

/** A position in the walk; the path string is built only for a diff. */
interface Node {
  readonly parent: Node | undefined;
  /** The root text (`$`) for the root, else the key or index. */
  readonly key: string | number;
  /** Its segment, once built (a tagged key is hashed once, however many diffs lie below it). */
  segment?: string;
}

function segmentOf(n: Node): string {
  return (n.segment ??= n.parent === undefined ? String(n.key) : keySegment(n.key));
}

function pathOf(node: Node, extra = ''): string {
  const parts: string[] = [extra];
  let len = extra.length;
  let n: Node | undefined = node;
  for (; n !== undefined; n = n.parent) {
    const s = segmentOf(n);
    parts.push(s);
    len += s.length;
  }
  const path = parts.reverse().join('');
  return len <= MAX_PATH_CHARS ? path : capPath(path);
}

/** Absent on one side (a key only the other has). */
const MISSING: unique symbol = Symbol('missing');

/**
 * A value's JSON text, at most `max` characters: longer text is cut to `max − 1` and ends
 * in `…` (never valid JSON, so a reader can tell). Cheap on large values: it stops early.
 */
export function preview(value: unknown, max = VALUE_PREVIEW_CHARS): string {
  if (value === MISSING) return '';
  const parts: string[] = [];
  let len = 0;
  const emit = (s: string): boolean => {
    parts.push(s);
    len += s.length;
    return len <= max;
  };
  const walk = (v: unknown): boolean => {
    if (typeof v === 'string') return emit(JSON.stringify(v.length > max ? v.slice(0, max) : v));
    if (typeof v !== 'object' || v === null) return emit(typeof v === 'number' && !Number.isFinite(v) ? 'null' : JSON.stringify(v) ?? 'null');
    if (Array.isArray(v)) {
      if (!emit('[')) return false;
      for (let i = 0; i < v.length; i++) {
        if (i > 0 && !emit(',')) return false;
        if (!walk(v[i])) return false;
      }
      return emit(']');
    }
    if (!emit('{')) return false;
    let first = true;
    for (const k of Object.keys(v)) {
      if (!first && !emit(',')) return false;
      first = false;
      if (!emit(JSON.stringify(k.length > max ? k.slice(0, max) : k) + ':')) return false;
      if (!walk((v as Record<string, unknown>)[k])) return false;
    }
    return emit('}');
  };
  walk(value);
  const text = parts.join('');
  return text.length <= max ? text : text.slice(0, max - 1) + '…';
}

/**
 * Collects diffs: the first MAX_DIFFS as found, then only the first diff of each field
 * (normalised path) not yet recorded, up to MAX_FIELD_DIFFS. So the set of differing fields
 * is complete unless `truncated`, which noise cancellation relies on.
 */
class Diffs {
  readonly list: FieldDiff[] = [];
  readonly #fields = new Set<string>();
  truncated = false;

  /** Returns false once nothing more can be recorded (stop walking). */
  add(path: string, live: unknown, shadow: unknown): boolean {
    const field = normalisePath(path);
    if (this.list.length >= MAX_DIFFS && this.#fields.has(field)) return true;
    if (this.list.length >= MAX_FIELD_DIFFS) {
      this.truncated = true;
      return false;
    }
    this.#fields.add(field);
    this.list.push({ path, live: preview(live), shadow: preview(shadow) });
    return true;
  }
}

type Kind = 'missing' | 'null' | 'array' | 'object' | 'string' | 'number' | 'boolean' | 'other';

function kindOf(v: unknown): Kind {
  if (v === MISSING) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  const t = typeof v;
  return t === 'object' || t === 'string' || t === 'number' || t === 'boolean' ? t : 'other';
}

interface Frame {
  readonly a: unknown;
  readonly b: unknown;
  readonly node: Node;
}

/**
 * Deep comparison of parsed JSON (live `a`, shadow `b`), depth-first in document order,
 * with an explicit stack (a deeply nested answer cannot overflow the call stack).
 */
function walk(frames: Frame[], diffs: Diffs, tol: number): boolean {
  const stack = frames.reverse();
  while (stack.length > 0) {
    const { a, b, node } = stack.pop()!;
    if (a === b) continue;
    const ka = kindOf(a);
    const kb = kindOf(b);
    if (ka !== kb) {
      if (!diffs.add(pathOf(node), a, b)) return false;
      continue;
    }
    if (ka === 'number') {
      if (!numbersEqual(a as number, b as number, tol) && !diffs.add(pathOf(node), a, b)) return false;
    } else if (ka === 'array') {
      const xa = a as unknown[];
      const xb = b as unknown[];
      if (xa.length !== xb.length && !diffs.add(pathOf(node, LENGTH_SEGMENT), xa.length, xb.length)) return false;
      for (let i = Math.min(xa.length, xb.length) - 1; i >= 0; i--) {
        if (xa[i] !== xb[i]) stack.push({ a: xa[i], b: xb[i], node: { parent: node, key: i } });
      }
    } else if (ka === 'object') {
      const oa = a as Record<string, unknown>;
      const ob = b as Record<string, unknown>;
      const children: Frame[] = [];
      for (const k of Object.keys(oa)) {
        const vb = Object.hasOwn(ob, k) ? ob[k] : MISSING;
        if (oa[k] !== vb) children.push({ a: oa[k], b: vb, node: { parent: node, key: k } });
      }
      for (const k of Object.keys(ob)) {
        if (!Object.hasOwn(oa, k)) children.push({ a: MISSING, b: ob[k], node: { parent: node, key: k } });
      }
      for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]!);
    } else if (!diffs.add(pathOf(node), a, b)) {
      // Strings and booleans that are not identical (=== above), or anything unexpected.
      return false;
    }
  }
  return true;
}


type Parsed = { ok: true; value: unknown } | { ok: false; text: string };

function parseJson(body: Buffer): Parsed {
  let text = body.toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, text };
  }
}

/** A non-JSON body as a JSON string of its start (the report redacts it further). */
function textOf(body: Buffer): string {
  return body.subarray(0, VALUE_PREVIEW_CHARS * 4).toString('utf8');
}

/**
 * The `data` payloads of an event stream, one per event (WHATWG event-stream parsing, but
 * only `data`; a last event without its blank line is kept, so a difference there counts).
 */
export function parseEventStream(text: string): string[] {
  const events: string[] = [];
  let data: string[] = [];
  const dispatch = (): void => {
    if (data.length > 0) events.push(data.join('\n'));
    data = [];
  };
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      dispatch();
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') continue;
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    data.push(value);
  }
  dispatch();
  return events;
}

function tryParse(text: string): Parsed {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, text };
  }
}

function compareEventStreams(live: Buffer, shadow: Buffer, diffs: Diffs, tol: number): void {
  const ea = parseEventStream(live.toString('utf8'));
  const eb = parseEventStream(shadow.toString('utf8'));
  if (ea.length !== eb.length && !diffs.add(BODY_PATH + LENGTH_SEGMENT, ea.length, eb.length)) return;
  const n = Math.min(ea.length, eb.length);
  const root: Node = { parent: undefined, key: BODY_PATH };
  for (let i = 0; i < n; i++) {
    const a = ea[i]!;
    const b = eb[i]!;
    if (a === b) continue;
    const node: Node = { parent: root, key: i };
    const pa = tryParse(a);
    const pb = tryParse(b);
    if (pa.ok && pb.ok) {
      if (!walk([{ a: pa.value, b: pb.value, node }], diffs, tol)) return;
    } else if (!diffs.add(pathOf(node), a, b)) {
      return;
    }
  }
}

function verdict(diffs: Diffs): Comparison {
  if (diffs.list.length === 0) return { outcome: 'agree', diffs: [] };
  return diffs.truncated ? { outcome: 'disagree', diffs: diffs.list, truncated: true } : { outcome: 'disagree', diffs: diffs.list };
}

const statusClass = (s: number): number => Math.floor(s / 100);

/** Whether an answer's body is content-encoded (gzip, br…): anything but absent, empty or `identity`. */
export function isEncoded(a: CapturedAnswer): boolean {
  const e = a.contentEncoding?.trim().toLowerCase();
  return e !== undefined && e !== '' && e !== 'identity';
}

/** Compare the live answer with the shadow's (rules at the top of this file). */
export function compareAnswers(live: CapturedAnswer, shadow: CapturedAnswer, opts: CompareOptions): Comparison {
  if (shadow.failure === 'timeout') return { outcome: 'timeout', diffs: [] };
  if (shadow.failure !== undefined || shadow.status === 0) return { outcome: 'error', diffs: [] };
  if (live.failure !== undefined || live.status === 0) return { outcome: 'not_compared', diffs: [], reason: NOT_COMPARED.liveFailed };
  if (statusClass(live.status) !== statusClass(shadow.status)) {
    return { outcome: 'disagree', diffs: [{ path: STATUS_PATH, live: String(live.status), shadow: String(shadow.status) }] };
  }
  if (isEncoded(live) || isEncoded(shadow)) return { outcome: 'not_compared', diffs: [], reason: NOT_COMPARED.encoded };
  if (live.body === undefined) return { outcome: 'not_compared', diffs: [], reason: NOT_COMPARED.liveBody };
  if (shadow.body === undefined) return { outcome: 'not_compared', diffs: [], reason: NOT_COMPARED.shadowBody };
  if (live.body.equals(shadow.body)) return { outcome: 'agree', diffs: [] };

  const kind = bodyKind(live.contentType);
  if (kind !== bodyKind(shadow.contentType)) {
    return {
      outcome: 'disagree',
      diffs: [{ path: CONTENT_TYPE_PATH, live: preview(live.contentType ?? MISSING), shadow: preview(shadow.contentType ?? MISSING) }],
    };
  }
  const diffs = new Diffs();
  const tol = opts.numberTolerance;
  if (kind === 'json') {
    const a = parseJson(live.body);
    const b = parseJson(shadow.body);
    if (a.ok && b.ok) walk([{ a: a.value, b: b.value, node: { parent: undefined, key: BODY_PATH } }], diffs, tol);
    else diffs.add(BODY_PATH, a.ok ? a.value : a.text.slice(0, VALUE_PREVIEW_CHARS * 4), b.ok ? b.value : b.text.slice(0, VALUE_PREVIEW_CHARS * 4));
  } else if (kind === 'event-stream') {
    compareEventStreams(live.body, shadow.body, diffs, tol);
  } else {
    diffs.add(BODY_PATH, textOf(live.body), textOf(shadow.body));
  }
  return verdict(diffs);
}
