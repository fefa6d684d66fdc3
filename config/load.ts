import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { PATTERN, substituteEnv, type MissingVar } from './env.ts';
import { configSchema, endpointSchema, type GatewayConfig } from './schema.ts';
import { validateConfig, validateEndpoint, type ConfigIssue } from './validate.ts';

/** The outcome of reading a config: a valid config, or every problem with its field path. */
export type LoadResult =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

function zodPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(root)';
}

function fromZod(error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap((i) => {
    // A misspelt key: name its own path (`server.lsiten`), not its parent's.
    if (i.code === 'unrecognized_keys') return i.keys.map((k) => ({ path: zodPath([...i.path, k]), message: 'unknown key' }));
    // A bad record key (an endpoint name): report the key's own rule, not "Invalid key in record".
    if (i.code === 'invalid_key') {
      const inner = i.issues[0]?.message ?? i.message;
      return { path: zodPath(i.path), message: `bad name: ${inner}` };
    }
    return { path: zodPath(i.path), message: i.message };
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
 * Cross-field checks of every endpoint that passed the schema, run even when other parts
 * of the file did not, so one `validate` run lists every problem (not one layer per run).
 */
function partialChecks(doc: unknown): ConfigIssue[] {
  const root = (doc ?? {}) as Record<string, unknown>;
  const endpoints = root.endpoints;
  if (!endpoints || typeof endpoints !== 'object') return [];
  const server = (root.server ?? {}) as Record<string, unknown>;
  const ctx = { hasEntra: root.entra !== undefined, hasPrivateListen: server.private_listen !== undefined };
  const issues: ConfigIssue[] = [];
  for (const [name, raw] of Object.entries(endpoints)) {
    const ep = endpointSchema.safeParse(raw);
    if (ep.success) issues.push(...validateEndpoint(name, ep.data, ctx));
  }
  return issues;
}

/** Validate an already-parsed document (YAML, JSON or an admin API body). */
export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const missing: MissingVar[] = [];
  const replaced = new Set<string>();
  const substituted = substituteEnv(doc ?? {}, env, missing, '', replaced);
  const issues: ConfigIssue[] = missing.map((m) => ({
    path: m.path || '(root)',
    message: `environment variable ${m.name} is not set and has no default`,
  }));
  let parsed = configSchema.safeParse(substituted);
  if (!parsed.success && retype(substituted, parsed.error.issues, replaced)) parsed = configSchema.safeParse(substituted);
  if (!parsed.success) {
    // An unset variable is one problem, not also "expected a number" at the same path.
    const unset = new Set(missing.map((m) => m.path));
    const schemaIssues = fromZod(parsed.error).filter((i) => !unset.has(i.path));
    return { ok: false, issues: [...issues, ...schemaIssues, ...partialChecks(substituted)] };
  }
  issues.push(...validateConfig(parsed.data));
  return issues.length ? { ok: false, issues } : { ok: true, config: parsed.data };
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

/** Parse YAML text (JSON is YAML too) into a validated config. */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let doc: unknown;
  // `keys: [${ADMIN_KEY}]` and `{ port: ${PORT} }` are not valid YAML as written (braces
  // are flow indicators), so each `${...}` is parsed as a plain word and put back after.
  const nonce = randomBytes(6).toString('hex');
  const vars: string[] = [];
  const masked = text.replace(PATTERN, (m) => `sy${nonce}v${vars.push(m) - 1}x`);
  try {
    doc = unmask(parseYaml(masked, { prettyErrors: true }), new RegExp(`sy${nonce}v(\\d+)x`, 'g'), vars);
  } catch (err) {
    const message = err instanceof YAMLParseError ? err.message.split('\n')[0] ?? err.message : String(err);
    return { ok: false, issues: [{ path: '(file)', message: `not valid YAML: ${message}` }] };
  }
  return parseConfig(doc, env);
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
