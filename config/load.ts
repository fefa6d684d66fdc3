import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAlias, isMap, isNode, isScalar, isSeq, parseDocument, visit, type ErrorCode, type Node, type YAMLError } from 'yaml';
import { z } from 'zod';
import { PATTERN, substituteEnv, type EnvProblem } from './env.ts';
import { configSchema, NO_ENDPOINTS, type GatewayConfig } from './schema.ts';
import { suggest } from './suggest.ts';
import { crossFieldIssues, type ConfigIssue } from './validate.ts';
import { keyWarnings, priorityWarnings } from './warnings.ts';

/**
 * The outcome of reading a config: a valid config (with the warnings `validate` prints and
 * the gateway logs at load), or every problem with its field path.
 *
 * No message ever contains a value from the file: a typo around a key (`primary "k-..."`)
 * can turn the key into a map key, a YAML error excerpt or a "received" value, and these
 * messages go to logs and CI output. YAML errors name line and column and the kind of
 * error; schema messages say what was expected, never what was found; a key name that
 * could be a secret is replaced by where it is.
 */
export type LoadResult =
  | {
    readonly ok: true;
    readonly config: GatewayConfig;
    readonly warnings: readonly string[];
    /** The document as written (`${ENV}` references kept): what admin edits are laid on. */
    readonly raw: Readonly<Record<string, unknown>>;
  }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/** "line 9, column 13" for a path of the document (its key when `key`), if there is a source text. */
type Locate = (path: readonly PropertyKey[], key: boolean) => string | undefined;

/** Path segments printed as they are: everything the schema names, and valid names. */
const PLAIN_SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;
/** An unknown key printed as it is: snake_case words, the shape of every config key. */
const CONFIG_WORD = /^[a-z]+(?:_[a-z]+)*$/;
const HIDDEN = '(not shown: it may hold a secret)';

function zodPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(root)';
}

/** The schema node at `path` (wrappers such as defaults and optionals looked through). */
function schemaAt(path: readonly PropertyKey[]): z.ZodType | undefined {
  const unwrap = (s: z.ZodType | undefined): z.ZodType | undefined => {
    let t = s;
    while (t instanceof z.ZodDefault || t instanceof z.ZodPrefault || t instanceof z.ZodOptional || t instanceof z.ZodNullable) {
      t = t.unwrap() as z.ZodType;
    }
    return t;
  };
  let s = unwrap(configSchema);
  for (const seg of path) {
    if (s instanceof z.ZodObject) s = unwrap((s.shape as Record<string, z.ZodType>)[String(seg)]);
    else if (s instanceof z.ZodRecord) s = unwrap(s.valueType as z.ZodType);
    else if (s instanceof z.ZodArray) s = unwrap(s.element as z.ZodType);
    else return undefined;
  }
  return s;
}

function knownKeys(path: readonly PropertyKey[]): string[] {
  const s = schemaAt(path);
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

/** `path` as printed: up to the first segment that is not plain, then where that one is. */
function renderPath(path: readonly PropertyKey[], locate: Locate | undefined): { path: string; note?: string } {
  const i = path.findIndex((s) => typeof s !== 'number' && !PLAIN_SEGMENT.test(String(s)));
  if (i < 0) return { path: zodPath(path) };
  const where = locate?.(path.slice(0, i + 1), true);
  return { path: zodPath(path.slice(0, i)), note: `a key${where ? ` at ${where}` : ''} ${HIDDEN}` };
}

function unknownKey(parent: readonly PropertyKey[], key: string, locate: Locate | undefined): ConfigIssue {
  const at = renderPath(parent, locate);
  const known = knownKeys(parent);
  const guess = suggest(key, known);
  const hint = guess ? `; did you mean ${guess}?` : '';
  // Under `keys` only a near-miss of a slot name is shown; elsewhere config-shaped words too.
  const secretish = parent.map(String).includes('keys');
  if (!at.note && (guess || (!secretish && CONFIG_WORD.test(key) && key.length <= 40))) {
    return { path: zodPath([...parent, key]), message: `unknown key${hint}` };
  }
  // `primary "k-..."` or `primary:k-...`: a key with its separator missing.
  const glued = /^([a-z_]+)(?:[\s"':])/.exec(key)?.[1];
  const colon = glued && known.includes(glued) ? `; is the ": " (a colon and a space) after ${glued} missing?` : hint;
  if (at.note) return { path: at.path, message: `${at.note}: an unknown key below it${colon}` };
  const where = locate?.([...parent, key], true);
  return { path: at.path, message: `unknown key${where ? ` at ${where}` : ''} ${HIDDEN}${colon}` };
}

function fromZod(error: z.ZodError, locate: Locate | undefined): ConfigIssue[] {
  return error.issues.flatMap((i): ConfigIssue | ConfigIssue[] => {
    // A misspelt key: name its own path (`server.lsiten`), not its parent's.
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => unknownKey(i.path, k, locate));
    const at = renderPath(i.path, locate);
    const prefix = at.note ? `${at.note}: ` : '';
    // A bad record key (an endpoint name): report the key's own rule, not "Invalid key in record".
    if (i.code === 'invalid_key') {
      const inner = i.issues[0]?.message ?? i.message;
      return { path: at.path, message: `${prefix}bad name: ${inner}` };
    }
    return { path: at.path, message: `${prefix}${i.message}` };
  });
}

/**
 * `port: ${PORT:-8080}` substitutes text. Where the schema wants a number or a boolean
 * and got a substituted string, read the string as YAML would have read the value.
 * Mutates `root` (substituteEnv's fresh copy); true when something changed.
 */
function retype(root: unknown, issues: z.ZodError['issues'], replaced: ReadonlySet<string>): boolean {
  let changed = false;
  for (const i of issues) {
    if (i.code !== 'invalid_type' || (i.expected !== 'number' && i.expected !== 'boolean')) continue;
    const path = i.path.map(String);
    if (!replaced.has(path.join('.'))) continue;
    const key = path.pop()!;
    const parent = path.reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], root) as Record<string, unknown> | undefined;
    const v = parent?.[key];
    if (typeof v !== 'string') continue;
    const typed = i.expected === 'number'
      ? (/^[-+]?\d+(\.\d+)?$/.test(v.trim()) ? Number(v) : undefined)
      : (v === 'true' ? true : v === 'false' ? false : undefined);
    if (typed === undefined) continue;
    parent![key] = typed;
    changed = true;
  }
  return changed;
}

/**
 * Every string at a place that holds secrets (`keys` anywhere, `state.redis_url`), keys
 * of those maps included: the last line of defence, should a message ever quote one.
 */
function secretsOf(doc: unknown): string[] {
  const out: string[] = [];
  const collect = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (!CONFIG_WORD.test(k)) out.push(k);
        collect(x);
      }
    }
  };
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'keys' || k === 'redis_url') collect(x);
        else walk(x);
      }
    }
  };
  walk(doc);
  // Short strings ("", "x") would redact ordinary words; the schema keeps real keys longer.
  return [...new Set(out)].filter((s) => s.length >= 6);
}

function redact(issues: readonly ConfigIssue[], secrets: readonly string[]): ConfigIssue[] {
  if (!secrets.length) return [...issues];
  const scrub = (s: string): string => secrets.reduce((t, x) => t.split(x).join('(redacted)'), s);
  return issues.map((i) => ({ path: scrub(i.path), message: scrub(i.message) }));
}

function check(doc: unknown, env: NodeJS.ProcessEnv, locate: Locate | undefined): LoadResult {
  if (doc === null || doc === undefined) {
    return { ok: false, issues: [{ path: '(root)', message: `the config is empty; ${NO_ENDPOINTS}` }] };
  }
  const problems: EnvProblem[] = [];
  const replaced = new Set<string>();
  const substituted = substituteEnv(doc, env, problems, '', replaced);
  const issues: ConfigIssue[] = [...problems];
  let parsed = configSchema.safeParse(substituted);
  if (!parsed.success && retype(substituted, parsed.error.issues, replaced)) parsed = configSchema.safeParse(substituted);
  if (!parsed.success) {
    // An unset variable is one problem, not also "expected a number" at the same path.
    const unset = new Set(problems.map((m) => m.path));
    issues.push(...fromZod(parsed.error, locate).filter((i) => !unset.has(i.path)));
  }
  // Cross-field checks run on the document as written, valid parts only, whether or not
  // the schema passed: every problem in one run (see validate.ts).
  issues.push(...crossFieldIssues(substituted));
  if (issues.length || !parsed.success) return { ok: false, issues: redact(issues, secretsOf(substituted)) };
  return { ok: true, config: parsed.data, warnings: [...keyWarnings(parsed.data), ...priorityWarnings(parsed.data)], raw: doc as Record<string, unknown> };
}

/** Validate an already-parsed document (YAML, JSON or an admin API body). */
export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): LoadResult {
  return check(doc, env, undefined);
}

/** Put the `${...}` texts masked by {@link parseConfigText} back, in keys and values. */
function unmask(value: unknown, mark: RegExp, vars: readonly string[]): unknown {
  const put = (s: string): string => s.replace(mark, (_m, i: string) => vars[Number(i)] ?? '');
  if (typeof value === 'string') return put(value);
  if (Array.isArray(value)) return value.map((v) => unmask(v, mark, vars));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [put(k), unmask(v, mark, vars)]));
  }
  return value;
}

/** What each YAML error code means, in words (yaml's own messages quote the source). */
const YAML_ERRORS: Partial<Record<ErrorCode, string>> = {
  BAD_DQ_ESCAPE: 'a bad escape sequence in a double-quoted string',
  BAD_INDENT: 'bad indentation (or a flow collection { } / [ ] not closed)',
  BAD_SCALAR_START: 'a plain value cannot start with this character (quote it)',
  BLOCK_AS_IMPLICIT_KEY: 'a nested block where a key was expected (is a ":" or an indent wrong?)',
  BLOCK_IN_FLOW: 'a "key: value" inside a value in { } or [ ] (is a "," or a "}" missing?)',
  DUPLICATE_KEY: 'a key that appears twice in the same map',
  KEY_OVER_1024_CHARS: 'an implicit key longer than 1024 characters (is a ":" missing?)',
  MISSING_CHAR: 'a missing character (a closing quote, "}", "]" or ",")',
  MULTILINE_IMPLICIT_KEY: 'a key that spans lines (is a ":" missing?)',
  MULTIPLE_DOCS: 'more than one YAML document (---) in the file',
  TAB_AS_INDENT: 'a tab used for indentation (use spaces)',
  TAG_RESOLVE_FAILED: 'a tag (!...) that cannot be resolved',
  UNEXPECTED_TOKEN: 'an unexpected character (is a ":", "," or quote misplaced?)',
};

/** A map or a list where a map key should be (yaml itself would stringify it and warn). */
const COLLECTION_KEY = 'a map or a list used as a key (is there a stray "?" before a key, or a key written as { } or [ ]?)';
/** YAML errors listed; the rest are counted. */
const MAX_YAML_ISSUES = 5;

/** Where a node's text starts: the least start of it and its children (a block map's own range starts at its first ":"). */
function startOf(node: Node): number | undefined {
  let min: number | undefined;
  const take = (n: unknown): void => {
    const r = (n as { range?: readonly number[] | null } | null)?.range?.[0];
    if (r !== undefined && (min === undefined || r < min)) min = r;
  };
  take(node);
  visit(node, { Node: (_, n) => void take(n) });
  return min;
}

/** Parse YAML text (JSON is YAML too) into a validated config. */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  // `keys: [${ADMIN_KEY}]` and `{ port: ${PORT} }` are not valid YAML as written (braces
  // are flow indicators), so each `${...}` is parsed as a plain word and put back after.
  // `shifts` maps offsets in the masked text back to the user's text, for line:column.
  const nonce = randomBytes(6).toString('hex');
  const vars: string[] = [];
  const shifts: { at: number; masked: number; original: number }[] = [];
  let delta = 0;
  const masked = text.replace(PATTERN, (m: string, _name: string, _def: string | undefined, offset: number) => {
    const word = `sy${nonce}v${vars.push(m) - 1}x`;
    shifts.push({ at: offset + delta, masked: word.length, original: m.length });
    delta += word.length - m.length;
    return word;
  });
  const where = (maskedOffset: number): string => {
    let d = 0;
    let off = maskedOffset - delta;
    for (const s of shifts) {
      if (maskedOffset < s.at) {
        off = maskedOffset - d;
        break;
      }
      if (maskedOffset < s.at + s.masked) {
        off = s.at - d;
        break;
      }
      d += s.masked - s.original;
    }
    const before = text.slice(0, Math.max(0, off));
    const line = before.split('\n').length;
    return `line ${line}, column ${off - before.lastIndexOf('\n')}`;
  };

  // `logLevel: 'silent'`: the yaml library must never write to the process. By default it
  // emits a Node warning for a collection used as a map key, quoting that key: a stray `?`
  // before `keys: [...]` put the admin key on stderr. Its warnings, and collection keys,
  // are config errors here instead, with line and column only.
  const parsed = parseDocument(masked, { prettyErrors: false, logLevel: 'silent' });
  const found: { readonly pos: number; readonly what: string }[] = [...parsed.errors, ...parsed.warnings].map((e: YAMLError) => ({
    pos: e.pos[0],
    what: YAML_ERRORS[e.code] ?? e.code.toLowerCase().replaceAll('_', ' '),
  }));
  visit(parsed, {
    Pair(_, pair) {
      const key = pair.key;
      if (!isNode(key) || isScalar(key)) return;
      const target = isAlias(key) ? key.resolve(parsed) : key;
      if (target === undefined || isScalar(target)) return;
      found.push({ pos: startOf(key) ?? 0, what: COLLECTION_KEY });
    },
  });
  if (found.length) {
    const seen = new Set<string>();
    const issues: ConfigIssue[] = [];
    for (const f of found.sort((a, b) => a.pos - b.pos)) {
      const message = `not valid YAML at ${where(f.pos)}: ${f.what}`;
      if (!seen.has(message)) issues.push({ path: '(file)', message });
      seen.add(message);
    }
    // One stray `}` cascades into dozens of errors; the first few locate it.
    if (issues.length > MAX_YAML_ISSUES) {
      const more = issues.length - MAX_YAML_ISSUES;
      issues.splice(MAX_YAML_ISSUES, more, { path: '(file)', message: `… and ${more} more YAML error${more === 1 ? '' : 's'} (often caused by the first ones)` });
    }
    return { ok: false, issues };
  }
  if (parsed.contents === null) {
    return { ok: false, issues: [{ path: '(file)', message: `the file is empty (only blanks or comments); ${NO_ENDPOINTS}` }] };
  }
  let doc: unknown;
  try {
    doc = unmask(parsed.toJS(), new RegExp(`sy${nonce}v(\\d+)x`, 'g'), vars);
  } catch {
    return { ok: false, issues: [{ path: '(file)', message: 'not valid YAML: too many aliases' }] };
  }
  const locate: Locate = (path, key) => {
    let node: unknown = parsed.contents;
    for (const [i, seg] of path.entries()) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return undefined;
        node = key && i === path.length - 1 ? pair.key : pair.value;
      } else if (isSeq(node)) {
        node = node.items[Number(seg)];
      } else {
        return undefined;
      }
    }
    const start = (node as { range?: readonly number[] | null } | null)?.range?.[0];
    return start === undefined ? undefined : where(start);
  };
  return check(doc, env, locate);
}

/** Read and validate a config file. */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    return { ok: false, issues: [{ path: '(file)', message: `cannot read ${file}: ${code}` }] };
  }
  return parseConfigText(text, env);
}

/** One line per issue, the format `switchyard validate` prints. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('\n');
}
