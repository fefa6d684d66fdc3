import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parse } from 'yaml';
import { configJsonSchema, configJsonSchemaText, SCHEMA_FILE } from '../../../config/json-schema.ts';
import { formatIssues, parseConfigText } from '../../../config/load.ts';

/**
 * Issue 12, editor support: the published JSON Schema is the one config/schema.ts generates,
 * and the example config passes both the loader and that schema as an editor reads it.
 */

const ROOT = new URL('../../../', import.meta.url);
const EXAMPLE = 'examples/gateway.yaml';
const EXAMPLE_ENV = {
  SWITCHYARD_ADMIN_KEY: 'admin-key-of-the-example-0123456789',
  CARS_KEY_1: 'cars-key-of-the-example-0123456789',
  FRAUD_KEY_1: 'fraud-key-of-the-example-0123456789',
};

type Json = Record<string, unknown>;
const schema = configJsonSchema();

function at(node: unknown, ...path: string[]): Json {
  let n = node;
  for (const seg of path) n = (n as Json | undefined)?.[seg];
  assert.ok(n && typeof n === 'object', `no schema at ${path.join('.')}`);
  return n as Json;
}

/** A leaf's own check, looking through the `${VAR}` alternative. */
function own(node: Json): Json {
  return Array.isArray(node.anyOf) ? (node.anyOf[0] as Json) : node;
}

/**
 * The JSON Schema keywords the published file uses, checked as a draft 2020-12 validator
 * would (no validator is a dependency: the ajv in node_modules is eslint's, draft-07 only).
 * A keyword it does not know fails the test, so it can never pass a file by skipping one.
 */
const ANNOTATIONS = new Set(['$schema', '$id', 'title', 'description', 'default', '$defs']);
function violations(value: unknown, node: Json, path = '(root)'): string[] {
  if ('type' in node) {
    const t = node.type;
    const ok = t === 'integer' ? Number.isInteger(value)
      : t === 'array' ? Array.isArray(value)
      : t === 'object' ? typeof value === 'object' && value !== null && !Array.isArray(value)
      : typeof value === t;
    // The other keywords apply only to a value of the right type.
    if (!ok) return [`${path}: not ${String(t)}`];
  }
  const out: string[] = [];
  for (const [k, v] of Object.entries(node)) {
    if (ANNOTATIONS.has(k) || k === 'type') continue;
    const sub = (s: unknown, x: unknown, p: string): string[] => violations(x, s as Json, p);
    switch (k) {
      case '$ref': {
        assert.match(String(v), /^#\/\$defs\/[a-z_]+$/);
        out.push(...sub(at(schema, '$defs', String(v).split('/')[2] ?? ''), value, path));
        break;
      }
      case 'anyOf':
        if (!(v as unknown[]).some((s) => sub(s, value, path).length === 0)) out.push(`${path}: matches no alternative`);
        break;
      case 'enum': if (!(v as unknown[]).includes(value)) out.push(`${path}: not one of ${(v as unknown[]).join(', ')}`); break;
      case 'pattern': if (!new RegExp(String(v), 'u').test(String(value))) out.push(`${path}: does not match ${String(v)}`); break;
      case 'format': break; // an annotation in 2020-12 unless a validator opts in
      case 'minLength': if (String(value).length < Number(v)) out.push(`${path}: too short`); break;
      case 'minimum': if (Number(value) < Number(v)) out.push(`${path}: below ${String(v)}`); break;
      case 'maximum': if (Number(value) > Number(v)) out.push(`${path}: above ${String(v)}`); break;
      case 'exclusiveMinimum': if (Number(value) <= Number(v)) out.push(`${path}: not above ${String(v)}`); break;
      case 'minItems': if ((value as unknown[]).length < Number(v)) out.push(`${path}: too few items`); break;
      case 'maxItems': if ((value as unknown[]).length > Number(v)) out.push(`${path}: too many items`); break;
      case 'items': (value as unknown[]).forEach((x, i) => out.push(...sub(v, x, `${path}.${i}`))); break;
      case 'required':
        for (const r of v as string[]) if (!(r in (value as Json))) out.push(`${path}.${r}: required`);
        break;
      case 'propertyNames':
        for (const name of Object.keys(value as Json)) out.push(...sub(v, name, `${path} key ${name}`));
        break;
      case 'properties': break; // with additionalProperties below
      case 'additionalProperties': {
        const props = (node.properties ?? {}) as Json;
        for (const [name, x] of Object.entries(value as Json)) {
          if (name in props) out.push(...sub(props[name], x, `${path}.${name}`));
          else if (v === false) out.push(`${path}.${name}: unknown key`);
          else out.push(...sub(v, x, `${path}.${name}`));
        }
        break;
      }
      default: assert.fail(`the test's checker does not know the keyword ${k} (at ${path}): teach it`);
    }
  }
  return out;
}

test('the published schema is the one config/schema.ts generates', async () => {
  const published = await readFile(new URL(SCHEMA_FILE, ROOT), 'utf8').catch(() => '(missing)');
  assert.ok(
    published === configJsonSchemaText(),
    `${SCHEMA_FILE} is out of date with config/schema.ts: run \`npm run schema\` and commit the result`,
  );
});

test('the schema is draft 2020-12, describes the input side, and leaves refinements to validate', () => {
  assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(schema.$id, 'switchyard.schema.json');
  assert.match(String(schema.description), /switchyard validate/);
  assert.match(String(schema.description), /traffic sums to 100/);
  assert.deepEqual(schema.required, ['endpoints']);
  const endpoint = at(schema, 'properties', 'endpoints', 'additionalProperties');
  const deployment = at(endpoint, 'properties', 'deployments', 'additionalProperties');
  assert.deepEqual(endpoint.required, ['deployments']);
  assert.deepEqual(deployment.required, ['instances']);
  assert.equal(at(schema, 'properties', 'endpoints', 'propertyNames').pattern, '^[a-z][a-z0-9-]{2,31}$');
  // Enums users pick from, with their defaults.
  const authMode = at(endpoint, 'properties', 'auth_mode');
  assert.deepEqual(own(authMode).enum, ['key', 'aad_token', 'key_or_aad_token']);
  assert.equal(authMode.default, 'key');
  const onRedisError = at(schema, 'properties', 'state', 'properties', 'on_redis_error');
  assert.deepEqual(own(onRedisError).enum, ['local', 'open', 'closed']);
  assert.equal(onRedisError.default, 'local');
  const priority = at(endpoint, 'properties', 'priority', 'properties');
  assert.deepEqual(own(at(priority, 'default')).enum, ['critical', 'standard', 'sheddable']);
  assert.deepEqual(own(at(priority, 'callers', 'additionalProperties')).enum, ['critical', 'standard', 'sheddable']);
  assert.equal(at(priority, 'default').default, 'standard');
  // Defaults (SPEC §2) and descriptions from .describe().
  const settings = at(deployment, 'properties', 'request_settings', 'properties');
  assert.equal(at(settings, 'request_timeout_ms').default, 5000);
  assert.equal(at(settings, 'max_concurrent_requests_per_instance').default, 16);
  assert.equal(at(settings, 'max_queue_wait_ms').default, 500);
  assert.match(String(at(settings, 'request_timeout_ms').description), /response headers/);
  assert.deepEqual(at(schema, 'properties', 'server', 'properties', 'listen').default, { port: 8080 });
  assert.equal(at(schema, 'properties', 'server', 'properties', 'admin_listen', 'properties', 'host').default, '127.0.0.1');
  // Strict objects: a misspelt key is flagged in the editor too.
  const strict = (n: unknown, path: string): void => {
    if (!n || typeof n !== 'object') return;
    const o = n as Json;
    if (o.properties) assert.equal(o.additionalProperties, false, `${path} allows unknown keys`);
    for (const [k, v] of Object.entries(o)) strict(v, `${path}.${k}`);
  };
  strict(schema, '(root)');
  // zod's non-standard format is gone; its pattern stays.
  assert.doesNotMatch(configJsonSchemaText(), /starts_with/);
});

test('the example config validates with the loader (with its variables set) and against the schema as written', async () => {
  const text = await readFile(new URL(EXAMPLE, ROOT), 'utf8');
  assert.equal(text.split('\n')[0], `# yaml-language-server: $schema=../${SCHEMA_FILE}`);
  const loaded = parseConfigText(text, EXAMPLE_ENV);
  assert.ok(loaded.ok, loaded.ok ? '' : formatIssues(loaded.issues));
  assert.deepEqual(loaded.warnings, []);
  assert.deepEqual(Object.keys(loaded.config.endpoints), ['cars', 'fraud']);
  // As an editor reads it: plain YAML, `${VAR}` references not substituted.
  const doc: unknown = parse(text, { strict: true });
  assert.deepEqual(violations(doc, schema), []);
});

test('the schema flags what an editor should, and accepts ${VAR} wherever the loader does', () => {
  const doc = (endpoint: string, server = 'listen: { port: 8080 }'): unknown => parse(
    `server: { ${server} }\nendpoints:\n  cars:\n${endpoint}\n    deployments: { blue: { instances: [http://10.0.0.1:5001] } }\n`,
  );
  assert.deepEqual(violations(doc('    traffic: { blue: 100 }'), schema), []);
  assert.deepEqual(violations(doc('    trafic: { blue: 100 }'), schema), ['(root).endpoints.cars.trafic: unknown key']);
  assert.deepEqual(violations(doc('    auth_mode: keys'), schema), ['(root).endpoints.cars.auth_mode: matches no alternative']);
  assert.deepEqual(violations(doc('    traffic: { blue: 101 }'), schema), ['(root).endpoints.cars.traffic.blue: matches no alternative']);
  assert.deepEqual(violations(doc('    traffic: {}', 'listen: { port: eighty }'), schema), ['(root).server.listen.port: matches no alternative']);
  // Names are map keys, never substituted: no ${VAR} alternative there.
  assert.deepEqual(violations(parse('endpoints: { "${NAME}": { deployments: {} } }'), schema), ['(root).endpoints key ${NAME}: does not match ^[a-z][a-z0-9-]{2,31}$']);
  // Substituted by the loader before its own checks: fine in the editor too.
  assert.deepEqual(violations(doc('    auth_mode: "${AUTH_MODE:-key}"', 'listen: { port: "${PORT:-8080}" }'), schema), []);
  assert.deepEqual(violations(parse('endpoints: {}'), schema), []); // at least one endpoint: left to validate
  assert.deepEqual(violations(parse('server: {}'), schema), ['(root).endpoints: required']);
});
