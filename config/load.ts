import { readFile } from 'node:fs/promises';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { substituteEnv, type MissingVar } from './env.ts';
import { configSchema, type GatewayConfig } from './schema.ts';
import { validateConfig, type ConfigIssue } from './validate.ts';

/** The outcome of reading a config: a valid config, or every problem with its field path. */
export type LoadResult =
  | { readonly ok: true; readonly config: GatewayConfig }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

function zodPath(path: readonly PropertyKey[]): string {
  return path.map(String).join('.') || '(root)';
}

function fromZod(error: z.ZodError): ConfigIssue[] {
  return error.issues.map((i) => {
    // A bad record key (an endpoint name): report the key's own rule, not "Invalid key in record".
    if (i.code === 'invalid_key') {
      const inner = i.issues[0]?.message ?? i.message;
      return { path: zodPath(i.path), message: `bad name: ${inner}` };
    }
    return { path: zodPath(i.path), message: i.message };
  });
}

/** Validate an already-parsed document (YAML, JSON or an admin API body). */
export function parseConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const missing: MissingVar[] = [];
  const substituted = substituteEnv(doc ?? {}, env, missing);
  const issues: ConfigIssue[] = missing.map((m) => ({
    path: m.path || '(root)',
    message: `environment variable ${m.name} is not set and has no default`,
  }));
  const parsed = configSchema.safeParse(substituted);
  if (!parsed.success) return { ok: false, issues: [...issues, ...fromZod(parsed.error)] };
  issues.push(...validateConfig(parsed.data));
  return issues.length ? { ok: false, issues } : { ok: true, config: parsed.data };
}

/** Parse YAML text (JSON is YAML too) into a validated config. */
export function parseConfigText(text: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: true });
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
