import { z } from 'zod';
import { configSchema } from './schema.ts';

/**
 * The config file's JSON Schema (draft 2020-12), for editors: generated from
 * {@link configSchema} by zod's own export, on the input side (what users write: optional
 * fields, `default`s and `.describe()` texts shown), and published as
 * schema/switchyard.schema.json by `npm run schema`. A unit test fails when the published
 * file and this function disagree.
 *
 * zod's export is touched up in three ways, all in {@link finish}:
 * - `${VAR}` references: the loader substitutes them before the schema runs, so a value
 *   written `${PORT:-8080}` is valid where a number is wanted. Every leaf that a reference
 *   would fail (a number, integer or boolean; a string with an enum, pattern or format) also
 *   accepts a string holding one (`anyOf` with `#/$defs/env_reference`). Map keys (endpoint
 *   and deployment names) are not substituted and keep their plain pattern.
 * - zod's non-standard `format: "starts_with"` is dropped (its `pattern` says the same).
 * - keywords are put in one fixed order, so the file reads the same however zod orders them;
 *   properties keep the order of config/schema.ts.
 * Refinements (`.refine()`) have no JSON Schema form and are not exported: they, and the
 * cross-field rules of validate.ts, are left to `switchyard validate` (see {@link DESCRIPTION}).
 */

/** Where the file is published, relative to the repository root (and `$id`, relative to wherever it is loaded from). */
export const SCHEMA_FILE = 'schema/switchyard.schema.json';

export const DESCRIPTION = [
  'Switchyard gateway config (SPEC §2). Generated from config/schema.ts by `npm run schema`: do not edit by hand.',
  'It checks keys, types, ranges, enums, patterns and required fields, and shows defaults.',
  'Rules JSON Schema cannot express are left to `switchyard validate FILE`, which checks everything:',
  'traffic sums to 100 (or all 0) and names existing deployments; the mirror rules;',
  'auth_mode needs keys or an entra section; listen hosts, instance URLs (http(s) origins without credentials), the Redis URL and CIDRs are well formed;',
  'key digests are sha256: and 64 hex digits, keys have no surrounding spaces; at least one endpoint and one deployment; listeners do not collide.',
  '${VAR} and ${VAR:-default} references are accepted in any value (quote them inside [ ] or { }); their values are checked by `switchyard validate`.',
].join(' ');

const ENV_REFERENCE = {
  type: 'string',
  pattern: '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}',
  description: 'a ${VAR} or ${VAR:-default} reference, replaced from the environment when the config is loaded',
} as const;

/** Keywords in this order, then any other ones alphabetically. */
const ORDER = [
  '$schema', '$id', '$ref', 'title', 'description', 'default',
  'anyOf', 'oneOf', 'allOf',
  'type', 'enum', 'const', 'format', 'pattern', 'minLength', 'maxLength',
  'exclusiveMinimum', 'minimum', 'exclusiveMaximum', 'maximum',
  'minItems', 'maxItems', 'items',
  'properties', 'required', 'propertyNames', 'additionalProperties',
  '$defs',
];
/** Keywords whose value is a map of names to schemas (the names are data, not keywords). */
const SCHEMA_MAPS = new Set(['properties', '$defs']);
/** Keywords whose value is a schema, or a list of them. */
const SCHEMA_VALUED = new Set(['items', 'propertyNames', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'not']);
/** What stays beside `anyOf` when a leaf also takes a reference: the rest is the leaf's own check. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', 'deprecated']);

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function ordered(node: Json): Json {
  const rank = (k: string): number => {
    const i = ORDER.indexOf(k);
    return i < 0 ? ORDER.length : i;
  };
  const keys = Object.keys(node).sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return Object.fromEntries(keys.map((k) => [k, node[k]]));
}

/** Whether `${VAR}` as written would fail this leaf (so it needs the reference alternative). */
function refusesReference(node: Json): boolean {
  const t = node.type;
  if (t === 'number' || t === 'integer' || t === 'boolean') return true;
  return t === 'string' && ('enum' in node || 'pattern' in node || 'format' in node || 'const' in node);
}

/** `key`: a map key's schema (`propertyNames`): keys are never substituted, so no reference there. */
function finish(node: unknown, key = false): unknown {
  if (Array.isArray(node)) return node.map((n) => finish(n, key));
  if (!isObject(node)) return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    if (k === 'format' && v === 'starts_with') continue;
    if (SCHEMA_MAPS.has(k) && isObject(v)) {
      out[k] = Object.fromEntries(Object.entries(v).map(([name, s]) => [name, finish(s)]));
    } else if (SCHEMA_VALUED.has(k)) {
      out[k] = finish(v, k === 'propertyNames');
    } else {
      out[k] = v;
    }
  }
  if (key || !refusesReference(out)) return ordered(out);
  const outer: Json = {};
  const own: Json = {};
  for (const [k, v] of Object.entries(out)) (ANNOTATIONS.has(k) ? outer : own)[k] = v;
  outer.anyOf = [ordered(own), { $ref: '#/$defs/env_reference' }];
  return ordered(outer);
}

/** The config's JSON Schema, as published. */
export function configJsonSchema(): Json {
  // 'throw' (zod's default) on anything unrepresentable: a new transform or custom type
  // must be decided on here, not exported as "anything goes".
  const raw = z.toJSONSchema(configSchema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'throw' }) as Json;
  const { $schema, ...rest } = raw;
  const body = finish(rest) as Json;
  return ordered({
    $schema,
    $id: 'switchyard.schema.json',
    title: 'Switchyard config',
    description: DESCRIPTION,
    ...body,
    $defs: { ...(isObject(body.$defs) ? body.$defs : {}), env_reference: ordered(ENV_REFERENCE) },
  });
}

/** The published file's text: two-space JSON and a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
