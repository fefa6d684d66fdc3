import { printable } from './admin-client.ts';

/**
 * What an edit changes, field by field, for `apply --dry-run`, `delete --dry-run` and
 * `validate --diff` (a plan before applying, like `terraform plan`):
 *
 *   ~ endpoints.cars.traffic.blue: 100 -> 90
 *   + endpoints.cars.deployments.green
 *   - endpoints.dogs
 *
 * Both sides must be alike to compare: configs as the admin API shows them (defaults filled,
 * keys `"<redacted>"`). A config read from a file is brought to that shape with
 * {@link redactKeys}, so keys compare as present or absent: their values are never shown.
 */

export type ChangeOp = '+' | '-' | '~';

export interface Change {
  readonly op: ChangeOp;
  /** `endpoints.cars.traffic.blue`; a segment that is not a plain word is written `["a.b"]`. */
  readonly path: string;
  /** The old value (absent for `+`). */
  readonly before?: unknown;
  /** The new value (absent for `-`). */
  readonly after?: unknown;
}

/** What the admin API shows in place of a key. */
export const REDACTED = '<redacted>';

type Obj = Readonly<Record<string, unknown>>;

function isObject(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Equal as JSON (object key order ignored; `undefined` members are absent, as in JSON). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (isObject(a) && isObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].every((k) => sameValue(a[k], b[k]));
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  return a === b;
}

const PLAIN = /^[A-Za-z0-9_-]+$/;

function child(path: string, key: string): string {
  return PLAIN.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/**
 * Every difference between `before` and `after` under `path`. Objects are walked member by
 * member (members of `before` first, in its order, then those only in `after`); anything
 * else (numbers, strings, lists such as `instances`) is compared whole.
 */
export function diff(before: unknown, after: unknown, path: string): Change[] {
  if (before === undefined && after === undefined) return [];
  if (before === undefined) return [{ op: '+', path, after }];
  if (after === undefined) return [{ op: '-', path, before }];
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])];
    return keys.flatMap((k) => diff(before[k], after[k], child(path, k)));
  }
  return sameValue(before, after) ? [] : [{ op: '~', path, before, after }];
}

/** An endpoint config with each key slot present shown as {@link REDACTED}, as the admin API shows it. */
export function redactKeys(cfg: unknown): unknown {
  if (!isObject(cfg) || !isObject(cfg.keys)) return cfg;
  const keys = Object.fromEntries(Object.entries(cfg.keys).filter(([, v]) => v !== undefined).map(([k]) => [k, REDACTED]));
  return { ...cfg, keys };
}

/**
 * The changes from one set of endpoints to another (name → config; null or absent: no such
 * endpoint), under `endpoints.`, in `before`'s order then the new ones.
 */
export function diffEndpoints(before: Readonly<Record<string, unknown>>, after: Readonly<Record<string, unknown>>): Change[] {
  const names = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  return names.flatMap((n) => diff(before[n] ?? undefined, after[n] ?? undefined, child('endpoints', n)));
}

const MAX_VALUE = 120;

/** A value as a diff line shows it: JSON, on one line, clipped, printable (it came from outside). */
export function formatValue(v: unknown): string {
  const text = printable(JSON.stringify(v) ?? 'null');
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE)}…` : text;
}

/** One line: `~ path: a -> b`, `+ path: v` / `+ path` (an object), `- path: v` / `- path`. */
export function formatChange(c: Change): string {
  const path = printable(c.path);
  switch (c.op) {
    case '~':
      return `~ ${path}: ${formatValue(c.before)} -> ${formatValue(c.after)}`;
    case '+':
      return isObject(c.after) ? `+ ${path}` : `+ ${path}: ${formatValue(c.after)}`;
    case '-':
      return isObject(c.before) ? `- ${path}` : `- ${path}: ${formatValue(c.before)}`;
  }
}

/** The lines, one per change, or `no changes`. */
export function formatChanges(changes: readonly Change[]): string {
  return changes.length ? `${changes.map(formatChange).join('\n')}\n` : 'no changes\n';
}
