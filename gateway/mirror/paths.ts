import { createHmac, randomBytes } from 'node:crypto';

/**
 * Field paths in mirror comparisons (see compare.ts): how they are written, cut and
 * normalised, and which JSON keys may appear in them as they are. One random key per process,
 * drawn at load, tags the keys (and over-long paths) that are not shown.
 */

/** Longest path (characters); longer ones are cut and tagged (see the top of this file). */
export const MAX_PATH_CHARS = 256;
/** Longest key shown as it is (a longer one is tagged). */
export const MAX_KEY_CHARS = 32;

/** Pseudo-paths: not into the body, never learned as noise. */
export const STATUS_PATH = '$status';
export const CONTENT_TYPE_PATH = '$content_type';
/** The whole body: a difference there is not field-level, never learned as noise. */
export const BODY_PATH = '$';
/** The segment for an array's (or an event stream's) length: `$.xs[#]`. */
export const LENGTH_SEGMENT = '[#]';

/** True for `$status` and `$content_type`: verdicts on the answer, not fields of its body. */
export function isPseudoPath(path: string): boolean {
  return path === STATUS_PATH || path === CONTENT_TYPE_PATH;
}

/**
 * A path's segments: the root (`$`, or a pseudo-path) then each `.key`, `["key"]` or `[n]`.
 * Paths are the ones this module writes; anything else is returned as one segment.
 */
export function pathSegments(path: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < path.length && path[i] !== '.' && path[i] !== '[') i++;
  out.push(path.slice(0, i));
  while (i < path.length) {
    const start = i;
    if (path[i] === '.') {
      i++;
      while (i < path.length && path[i] !== '.' && path[i] !== '[') i++;
    } else if (path[i + 1] === '"') {
      // A JSON string: up to the unescaped closing quote, then `]`.
      i += 2;
      while (i < path.length && path[i] !== '"') i += path[i] === '\\' ? 2 : 1;
      i += 2;
    } else {
      while (i < path.length && path[i] !== ']') i++;
      i++;
    }
    out.push(path.slice(start, Math.min(i, path.length)));
  }
  return out;
}

/** An array index segment (`[3]`). */
export const INDEX = /^\[\d+\]$/;

/** `$.predictions[3].score` → `$.predictions[*].score`: per-field counts aggregate over array elements. */
export function normalisePath(path: string): string {
  if (!path.includes('[')) return path;
  return pathSegments(path).map((s) => (INDEX.test(s) ? '[*]' : s)).join('');
}

/** Per process: tags keys (and over-long paths) that are not shown as they are. */
const PATH_TAG_KEY = randomBytes(32);

/** 8 hex digits of an HMAC-SHA256 of `text` under the per-process key. */
export function pathTag(text: string): string {
  return createHmac('sha256', PATH_TAG_KEY).update(text).digest('hex').slice(0, 8);
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const SMALL_INT = /^\d{1,6}$/;
const ALNUM_RUN = /[A-Za-z0-9]+/g;

/**
 * Whether a JSON key looks like a field name, and is shown in paths as it is: at most
 * MAX_KEY_CHARS characters of `[A-Za-z_][A-Za-z0-9_.-]*` with no run of 8 or more letters and
 * digits mixing both (`KEYSECRET999`, a hash, a token) and no run of 7 or more digits (an
 * account or phone number); or a small integer (at most 6 digits: a class index).
 */
export function readableKey(key: string): boolean {
  if (SMALL_INT.test(key)) return true;
  if (key.length > MAX_KEY_CHARS || !FIELD_NAME.test(key)) return false;
  for (const [run] of key.matchAll(ALNUM_RUN)) {
    if (/\d{7}/.test(run)) return false;
    if (run.length >= 8 && /\d/.test(run) && /[A-Za-z]/.test(run)) return false;
  }
  return true;
}

/** A key's path segment (see the top of this file). */
export function keySegment(key: string | number): string {
  if (typeof key === 'number') return `[${key}]`;
  if (!readableKey(key)) return `["<key ${key.length} chars #${pathTag(key)}>"]`;
  return IDENT.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/**
 * A path no longer than MAX_PATH_CHARS: a longer one keeps its leading segments (normalised,
 * indices as `[*]`) while they fit, then `…#tag`, the tag of the whole normalised path; so two
 * paths to the same field cut the same way, and `normalisePath` leaves the result unchanged.
 */
export function capPath(path: string): string {
  if (path.length <= MAX_PATH_CHARS) return path;
  const segs = pathSegments(path).map((s) => (INDEX.test(s) ? '[*]' : s));
  const tag = `…#${pathTag(segs.join(''))}`;
  let out = '';
  for (const s of segs) {
    if (out.length + s.length + tag.length > MAX_PATH_CHARS) break;
    out += s;
  }
  return out + tag;
}
