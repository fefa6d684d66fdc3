import { z } from 'zod';

/**
 * The config file's schema (SPEC §2): the schema is the type, the defaults and the docs.
 * Every object is strict, so a misspelt key is an error that names its path instead of a
 * silently ignored setting. Cross-field rules (traffic sums, mirror rules, names that must
 * exist) live in {@link ./validate.ts} so each can name its own path.
 */

const hostPort = z.strictObject({
  host: z.string().min(1).default('0.0.0.0').describe('address to bind'),
  port: z.number().int().min(0).max(65535).describe('TCP port; 0 picks a free one'),
});
export type HostPort = z.infer<typeof hostPort>;

/** Integer or float seconds (probes, as in Azure ML). */
const seconds = z.number().min(0);

const requestSettings = z.strictObject({
  request_timeout_ms: z.number().int().min(1).max(3_600_000).default(5000)
    .describe('time to response headers, then the longest silence between body chunks'),
  max_concurrent_requests_per_instance: z.number().int().min(1).default(16),
  max_queue_wait_ms: z.number().int().min(0).default(500),
});

const probe = z.strictObject({
  path: z.string().startsWith('/').default('/'),
  initial_delay: seconds.default(0),
  period: seconds.positive().default(5),
  timeout: seconds.positive().default(2),
  success_threshold: z.number().int().min(1).default(1),
  failure_threshold: z.number().int().min(1).default(3),
});

const outlierDetection = z.strictObject({
  consecutive_failures: z.number().int().min(1).default(5),
  base_ejection_time_s: seconds.positive().default(30),
  max_ejection_percent: z.number().int().min(0).max(100).default(50),
});

const instanceUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return (u.protocol === 'http:' || u.protocol === 'https:') && (u.pathname === '/' || u.pathname === '') && !u.search;
  } catch {
    return false;
  }
}, { message: 'must be an http(s) origin such as http://10.0.0.11:5001 (no path or query)' });

const deployment = z.strictObject({
  instances: z.array(instanceUrl).min(1),
  scoring_route: z.string().startsWith('/').default('/score'),
  request_settings: requestSettings.prefault({}),
  readiness_probe: probe.optional(),
  outlier_detection: outlierDetection.optional(),
});
export type DeploymentConfig = z.infer<typeof deployment>;

/** A key as written: a literal (possibly from `${ENV}`) or `sha256:<64 hex>`. */
const keyValue = z.string().min(1).refine(
  (s) => !s.startsWith('sha256:') || /^sha256:[0-9a-fA-F]{64}$/.test(s),
  { message: 'a digest must be sha256: followed by 64 hex digits' },
);

const name = z.string().regex(/^[a-z][a-z0-9-]{2,31}$/, {
  message: 'must be 3-32 characters of a-z, 0-9 and -, starting with a letter',
});

const cidr = z.string().min(1).describe('an IPv4 or IPv6 CIDR such as 10.0.0.0/8, or a single address');

export const endpointSchema = z.strictObject({
  auth_mode: z.enum(['key', 'aad_token', 'key_or_aad_token']).default('key'),
  keys: z.strictObject({ primary: keyValue.optional(), secondary: keyValue.optional() }).optional(),
  roles: z.array(z.string().min(1)).default([]),
  public_network_access: z.enum(['enabled', 'disabled']).default('enabled'),
  allowed_networks: z.array(cidr).optional(),
  traffic: z.record(z.string(), z.number().int().min(0).max(100)).default({}),
  mirror_traffic: z.record(z.string(), z.number().int().min(0).max(50)).default({}),
  mirror_max_body_bytes: z.number().int().min(0).default(1_048_576),
  sticky: z.strictObject({ header: z.string().min(1).toLowerCase() }).optional(),
  rate_limit: z.strictObject({
    requests_per_second: z.number().positive(),
    burst: z.number().int().min(1).optional(),
    per: z.enum(['endpoint', 'caller']).default('endpoint'),
  }).optional(),
  deployments: z.record(name, deployment).refine((d) => Object.keys(d).length > 0, {
    message: 'an endpoint needs at least one deployment',
  }),
});
export type EndpointConfig = z.infer<typeof endpointSchema>;

export const configSchema = z.strictObject({
  server: z.strictObject({
    listen: hostPort.prefault({ port: 8080 }),
    private_listen: hostPort.optional(),
    admin_listen: hostPort.extend({ host: z.string().min(1).default('127.0.0.1') }).prefault({ port: 9090 }),
    host_suffix: z.string().min(2).startsWith('.').toLowerCase().optional(),
    trusted_proxies: z.array(cidr).default([]),
    max_body_bytes: z.number().int().min(0).default(10_485_760),
    request_buffering_bytes: z.number().int().min(0).default(1_048_576)
      .describe('request bodies up to this size are read whole before an upstream connection is taken; larger ones stream'),
    client_header_timeout_ms: z.number().int().min(1).default(30_000)
      .describe('request headers not complete by then: 408'),
    client_body_timeout_ms: z.number().int().min(1).default(30_000)
      .describe('an upload silent this long: 408'),
    shutdown_grace_ms: z.number().int().min(0).default(30_000),
  }).prefault({}),
  state: z.strictObject({
    redis_url: z.string().min(1).optional(),
    on_redis_error: z.enum(['local', 'open', 'closed']).default('local'),
    file: z.string().min(1).optional()
      .describe('where regenerated keys are kept (as digests) when there is no Redis; default: next to the config file'),
  }).optional(),
  entra: z.strictObject({
    authority: z.url().default('https://login.microsoftonline.com'),
    tenants: z.array(z.string().min(1)).min(1),
    audiences: z.array(z.string().min(1)).min(1),
    clock_skew_s: z.number().int().min(0).max(600).default(60),
    fetch_timeout_ms: z.number().int().min(1).max(60_000).default(2000)
      .describe('discovery / JWKS fetch deadline; while the issuer fails, requests fail fast until the next retry'),
  }).optional(),
  admin: z.strictObject({
    keys: z.array(z.union([z.literal(''), keyValue])).default([])
      .describe('Bearer keys for /admin: literal, ${ENV} (an unset variable with an empty default is skipped) or sha256:<hex>'),
    entra_roles: z.array(z.string().min(1)).default([]),
  }).prefault({}),
  logging: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    access_log: z.boolean().default(true),
  }).prefault({}),
  endpoints: z.record(name, endpointSchema).default({}),
});

/** The validated, defaulted config (the shape users write, with every default filled in). */
export type GatewayConfig = z.infer<typeof configSchema>;
