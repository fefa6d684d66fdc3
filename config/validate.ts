import { BlockList, isIP } from 'node:net';
import type { z } from 'zod';
import { addCidr } from './cidr.ts';
import { deploymentSchema, endpointSchema, serverSchema, type DeploymentConfig, type GatewayConfig, type HostPort } from './schema.ts';

/**
 * Rules that span fields, each reported with the path a user would fix
 * (`endpoints.cars.traffic: values must sum to 100 or 0, got 90`).
 *
 * They run on the raw document, field by field, not on the schema's output: a config with
 * a schema error elsewhere (even in the same endpoint) still gets every cross-field check
 * whose fields are valid, so one `validate` run lists every problem instead of one layer
 * per run. A field that fails the schema is skipped here (the schema already reported it).
 * Messages never quote values (a key or URL could be in them); paths name what to fix.
 */
export interface ConfigIssue { readonly path: string; readonly message: string }

/** What an endpoint's checks need to know about the rest of the config. */
export interface EndpointContext {
  readonly hasEntra: boolean;
  readonly hasPrivateListen: boolean;
}

/** A name the schema accepts for an endpoint or deployment (names go into paths). */
const NAME = /^[a-z][a-z0-9-]{2,31}$/;

function record(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** Each field of `raw` parsed by its own schema: the valid ones (defaults applied) and which failed. */
function fields<S extends z.ZodObject>(schema: S, raw: unknown): { readonly ok: Partial<z.output<S>>; readonly bad: ReadonlySet<string> } {
  const src = record(raw) ?? {};
  const ok: Record<string, unknown> = {};
  const bad = new Set<string>();
  for (const [k, field] of Object.entries(schema.shape as Record<string, z.ZodType>)) {
    const r = field.safeParse(src[k]);
    if (r.success) ok[k] = r.data;
    else bad.add(k);
  }
  return { ok: ok as Partial<z.output<S>>, bad };
}

function checkCidrs(list: readonly string[] | undefined, path: string, issues: ConfigIssue[]): void {
  list?.forEach((c, i) => {
    const err = addCidr(new BlockList(), c);
    if (err) issues.push({ path: `${path}.${i}`, message: err });
  });
}

/** Whether two listeners on the same port would fight over it. */
function hostsOverlap(a: string, b: string): boolean {
  const norm = (h: string): string => h.toLowerCase().replace(/\.$/, '');
  const x = norm(a);
  const y = norm(b);
  if (x === y) return true;
  // `::` is dual-stack on the platforms Node supports: it takes the port on every address.
  if (x === '::' || y === '::') return true;
  // 0.0.0.0 takes the port on every IPv4 address (and on names, which resolve to one).
  if (x === '0.0.0.0') return isIP(y) !== 6;
  if (y === '0.0.0.0') return isIP(x) !== 6;
  return false;
}

/** The entries of a record whose values are numbers, or undefined when it is not a record. */
function numbersOf(v: Record<string, unknown> | undefined): Record<string, number> | undefined {
  if (!v) return undefined;
  return Object.fromEntries(Object.entries(v).filter((e): e is [string, number] => typeof e[1] === 'number'));
}

/** Cross-field checks of `server`, on whichever of its fields are valid. */
function validateServer(raw: unknown, issues: ConfigIssue[]): void {
  const { ok: server } = fields(serverSchema, raw);
  checkCidrs(server.trusted_proxies, 'server.trusted_proxies', issues);
  const listeners: [string, HostPort | undefined][] = [
    ['server.listen', server.listen],
    ['server.private_listen', server.private_listen],
    ['server.admin_listen', server.admin_listen],
  ];
  listeners.forEach(([path, l], i) => {
    if (!l || l.port === 0) return;
    const clash = listeners.slice(0, i).find(([, o]) => o && o.port === l.port && hostsOverlap(o.host, l.host));
    if (clash) {
      issues.push({ path, message: `${l.host}:${l.port} overlaps ${clash[0]} (${clash[1]?.host}:${clash[1]?.port}): each listener needs its own address and port` });
    }
  });
}

/**
 * Cross-field checks of one endpoint as written (`raw`, after `${VAR}` substitution), on
 * whichever of its fields are schema-valid.
 */
export function validateEndpoint(name: string, raw: unknown, ctx: EndpointContext): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = `endpoints.${name}`;
  const { ok: ep, bad } = fields(endpointSchema, raw);
  // Every deployment written, valid or not (a name in `traffic` may point at an invalid
  // one: that is the deployment's problem, reported by the schema, not a missing name).
  const written = record(record(raw)?.deployments);
  const deployments = new Map<string, DeploymentConfig | undefined>();
  for (const [d, v] of Object.entries(written ?? {})) {
    const r = deploymentSchema.safeParse(v);
    deployments.set(d, r.success ? r.data : undefined);
  }
  for (const [d, dep] of deployments) {
    if (!dep || !NAME.test(d)) continue;
    const seen = new Set<string>();
    dep.instances.forEach((u, i) => {
      const origin = new URL(u).origin;
      if (seen.has(origin)) issues.push({ path: `${at}.deployments.${d}.instances.${i}`, message: `${origin} is listed twice` });
      seen.add(origin);
    });
  }
  // A key of `traffic` that is not even a name is not put in a path (it could be anything).
  const named = (field: string, d: string): string => (NAME.test(d) ? `${at}.${field}.${d}` : `${at}.${field}`);
  const unknown = (field: string, d: string): ConfigIssue => ({
    path: named(field, d),
    message: NAME.test(d) ? `no deployment named ${d}` : 'a name that is not a deployment (3-32 characters of a-z, 0-9 and -)',
  });
  if (ep.traffic) {
    let sum = 0;
    for (const [d, w] of Object.entries(ep.traffic)) {
      sum += w;
      if (written && !deployments.has(d)) issues.push(unknown('traffic', d));
    }
    if (sum !== 100 && sum !== 0) {
      issues.push({ path: `${at}.traffic`, message: `values must sum to 100 or 0, got ${sum}` });
    }
  }
  // The mirror rules are checked on the numbers written even when one of them failed the
  // schema (a percent over 50), so one run lists every problem.
  const mirrorTraffic = ep.mirror_traffic ?? numbersOf(record(record(raw)?.mirror_traffic));
  if (mirrorTraffic) {
    const mirrors = Object.entries(mirrorTraffic).filter(([, p]) => p > 0);
    if (mirrors.length > 1) {
      issues.push({ path: `${at}.mirror_traffic`, message: 'mirror to one deployment only' });
    }
    for (const [d] of mirrors) {
      if (written && !deployments.has(d)) issues.push(unknown('mirror_traffic', d));
      else if (ep.traffic && (ep.traffic[d] ?? 0) > 0) {
        issues.push({ path: named('mirror_traffic', d), message: 'a deployment with live traffic cannot also be the mirror' });
      }
    }
  }
  if (ep.auth_mode) {
    const needsKey = ep.auth_mode === 'key' || ep.auth_mode === 'key_or_aad_token';
    if (needsKey && !bad.has('keys') && !ep.keys?.primary && !ep.keys?.secondary) {
      issues.push({ path: `${at}.keys`, message: `auth_mode ${ep.auth_mode} needs keys.primary or keys.secondary` });
    }
    if (ep.auth_mode !== 'key' && !ctx.hasEntra) {
      issues.push({ path: `${at}.auth_mode`, message: `auth_mode ${ep.auth_mode} needs the entra section` });
    }
  }
  if (ep.public_network_access === 'disabled' && !ctx.hasPrivateListen) {
    issues.push({
      path: `${at}.public_network_access`,
      message: 'disabled needs server.private_listen: the endpoint is served only on the private listener',
    });
  }
  checkCidrs(ep.allowed_networks, `${at}.allowed_networks`, issues);
  return issues;
}

/**
 * Cross-field checks of a whole document (as written, after `${VAR}` substitution), valid
 * or not: each check runs on the fields it needs that are schema-valid.
 */
export function crossFieldIssues(doc: unknown): ConfigIssue[] {
  const root = record(doc) ?? {};
  const issues: ConfigIssue[] = [];
  validateServer(root.server, issues);
  const server = record(root.server);
  const ctx = { hasEntra: root.entra !== undefined, hasPrivateListen: server?.private_listen !== undefined };
  for (const [name, raw] of Object.entries(record(root.endpoints) ?? {})) {
    // A name the schema refuses is reported there; it is not repeated in other paths.
    if (NAME.test(name)) issues.push(...validateEndpoint(name, raw, ctx));
  }
  return issues;
}

/** Cross-field checks on an already schema-valid config. */
export function validateConfig(cfg: GatewayConfig): ConfigIssue[] {
  return crossFieldIssues(cfg);
}
