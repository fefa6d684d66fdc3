import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isMap, parseDocument, stringify } from 'yaml';
import { PATTERN } from '../../config/env.ts';

/**
 * The YAML `switchyard get` prints and `switchyard apply -f` reads: the `endpoints:` section
 * of a config file, and nothing else, so get → edit → apply round-trips. The rest of a config
 * (server, state, admin, entra, logging) is the file's alone: the admin API cannot change
 * listeners or credentials, and `apply` says so rather than dropping them silently.
 */

/** `endpoints:\n  NAME:\n    ...`, with `header` as comment lines above it. */
export function endpointsYaml(configs: Readonly<Record<string, unknown>>, header: readonly string[] = []): string {
  // lineWidth 0: never fold a long value (an instance URL) over two lines.
  const body = stringify({ endpoints: configs }, { lineWidth: 0 });
  return `${header.map((l) => `# ${l}\n`).join('')}${body}`;
}

export type EndpointsFile =
  | { readonly ok: true; readonly endpoints: readonly (readonly [string, Readonly<Record<string, unknown>>])[] }
  | { readonly ok: false; readonly problems: readonly string[] };

function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** `line L, column C` of an offset in `text`. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, Math.max(0, offset));
  return `line ${before.split('\n').length}, column ${offset - before.lastIndexOf('\n')}`;
}

/** `${...}` references put back in every string and key (they were masked to parse). */
function unmask(v: unknown, mark: RegExp, refs: readonly string[]): unknown {
  const put = (s: string): string => s.replace(mark, (_m, i: string) => refs[Number(i)] ?? '');
  if (typeof v === 'string') return put(v);
  if (Array.isArray(v)) return v.map((x) => unmask(x, mark, refs));
  const r = record(v);
  return r ? Object.fromEntries(Object.entries(r).map(([k, x]) => [put(k), unmask(x, mark, refs)])) : v;
}

/**
 * The endpoints of YAML text, as written: `${ENV}` references are kept as references (the
 * gateway substitutes its own environment, on every replica), keys as given (`"<redacted>"`
 * keeps the current key). Problems name lines and columns, never the text (it may hold a key).
 */
export function parseEndpointsYaml(text: string): EndpointsFile {
  // `{ primary: ${CARS_KEY} }` is not YAML as written (braces are flow indicators): each
  // reference is parsed as a plain word and put back after, as the config loader does.
  const nonce = randomBytes(6).toString('hex');
  const refs: string[] = [];
  const masked = text.replace(PATTERN, (m: string) => `sy${nonce}r${refs.push(m) - 1}x`);
  // Positions are of the masked text: its lines are the file's (a reference never spans
  // lines), a column after a reference on the same line is approximate.
  // logLevel 'silent': the yaml library must never write to the process (a warning quotes the text).
  const doc = parseDocument(masked, { prettyErrors: false, logLevel: 'silent' });
  const errors = [...doc.errors, ...doc.warnings];
  if (errors.length) {
    return {
      ok: false,
      problems: errors.slice(0, 5).map((e) => `not valid YAML at ${lineColumn(masked, e.pos[0])}: ${e.code.toLowerCase().replaceAll('_', ' ')}`),
    };
  }
  if (!isMap(doc.contents)) return { ok: false, problems: ['expected a map with an endpoints: section (the shape `switchyard get` prints)'] };
  let root: Record<string, unknown>;
  try {
    root = record(unmask(doc.toJS(), new RegExp(`sy${nonce}r(\\d+)x`, 'g'), refs)) ?? {};
  } catch {
    return { ok: false, problems: ['not valid YAML: too many aliases'] };
  }
  const problems: string[] = [];
  for (const k of Object.keys(root)) {
    if (k === 'endpoints') continue;
    problems.push(/^[a-z_]{1,32}$/.test(k)
      ? `${k}: only endpoints can be applied through the admin API; ${k} is set in the gateway's config file (edit it there: the gateway reloads on save)`
      : 'a top-level key other than endpoints: only endpoints can be applied through the admin API');
  }
  const endpoints = record(root.endpoints);
  if (!endpoints || !Object.keys(endpoints).length) problems.push('endpoints: expected a map of endpoint name to its config, with at least one endpoint');
  const out: [string, Record<string, unknown>][] = [];
  for (const [name, cfg] of Object.entries(endpoints ?? {})) {
    const r = record(cfg);
    if (r) out.push([name, r]);
    else problems.push(`endpoints.${/^[a-z][a-z0-9-]{0,63}$/.test(name) ? name : '(a name)'}: expected the endpoint's config (a map)`);
  }
  return problems.length ? { ok: false, problems } : { ok: true, endpoints: out };
}

/** {@link parseEndpointsYaml} of a file; a file that cannot be read is a problem too. */
export async function readEndpointsFile(file: string): Promise<EndpointsFile> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return { ok: false, problems: [`cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`] };
  }
  return parseEndpointsYaml(text);
}
