import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * The config file's schema (SPEC §2): the schema is the type, the defaults and the docs.
 * Every object is strict, so a misspelt key is an error that names its path instead of a
 * silently ignored setting. Cross-field rules (traffic sums, mirror rules, names that must
 * exist) live in {@link ./validate.ts} so each can name its own path.
 */

/** An IP literal (`0.0.0.0`, `::1`) or an RFC 1123 hostname, as `server.listen` binds it. */
export function isListenHost(s: string): boolean {
  if (isIP(s)) return true;
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  return name.length > 0 && name.length <= 253
    && name.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

const listenHost = z.string().refine(isListenHost, {
  message: 'must be an IP address (0.0.0.0, ::1; no brackets) or a hostname',
});

const hostPort = z.strictObject({
  host: listenHost.default('0.0.0.0').describe('address to bind'),
  port: z.number().int().min(0).max(65535).describe('TCP port; 0 picks a free one'),
});
export type HostPort = z.infer<typeof hostPort>;

/**
 * Integer or float seconds (probes, as in Azure ML), at most a day: every duration becomes a
 * Node timer, and one past 2^31-1 ms would fire at once (a probe loop hundreds of times a second).
 */
const DAY_S = 86_400;
const seconds = z.number().min(0).max(DAY_S, { message: 'must be at most 86400 (a day)' });
/** Seconds that must be more than 0. */
const positiveSeconds = z.number().positive().max(DAY_S, { message: 'must be at most 86400 (a day)' });
/** Milliseconds a timer waits, at most an hour. */
const HOUR_MS = 3_600_000;
const millis = (min: number) => z.number().int().min(min).max(HOUR_MS, { message: 'must be at most 3600000 (an hour)' });

const requestSettings = z.strictObject({
  request_timeout_ms: z.number().int().min(1).max(3_600_000).default(5000)
    .describe('time to response headers, then the longest silence between body chunks'),
  max_concurrent_requests_per_instance: z.number().int().min(1).default(16),
  max_queue_wait_ms: millis(0).default(500),
});

const probe = z.strictObject({
  path: z.string().startsWith('/').default('/'),
  initial_delay: seconds.default(0),
  period: positiveSeconds.default(5),
  timeout: positiveSeconds.default(2),
  success_threshold: z.number().int().min(1).default(1),
  failure_threshold: z.number().int().min(1).default(3),
});

const outlierDetection = z.strictObject({
  consecutive_failures: z.number().int().min(1).default(5),
  base_ejection_time_s: positiveSeconds.default(30),
  max_ejection_percent: z.number().int().min(0).max(100).default(50),
});

function parseUrl(s: string): URL | undefined {
  try {
    return new URL(s);
  } catch {
    return undefined;
  }
}

// Messages never quote the URL: one with `user:password@` would put the password in the log.
const instanceUrl = z.string()
  .refine((s) => {
    const u = parseUrl(s);
    return u !== undefined && (u.protocol === 'http:' || u.protocol === 'https:') && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash;
  }, { message: 'must be an http(s) origin such as http://10.0.0.11:5001 (no path or query)', abort: true })
  .refine((s) => {
    const u = parseUrl(s);
    return !u?.username && !u?.password;
  }, { message: 'must not contain user:password@ (it would not be sent to the instance); remove the credentials from the URL' });

/**
 * An origin-form path (RFC 9112 §3.2.1): `/` then segments of RFC 3986 pchar (unreserved,
 * %XX, sub-delims, `:` and `@`). No space, control character, non-ASCII, `?` or `#`.
 */
const ORIGIN_PATH = /^(?:\/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*)+$/;

/** RFC 9110 token: what an HTTP header name may be. */
const headerName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { message: 'must be an HTTP header name' }).toLowerCase();

const circuitBreaker = z.strictObject({
  error_threshold_percent: z.number().int().min(1).max(100).default(50),
  volume_threshold: z.number().int().min(1).default(20),
  window_s: positiveSeconds.default(10),
  reset_timeout_s: positiveSeconds.default(30),
});

export const deploymentSchema = z.strictObject({
  // At most 256: a config is compiled whole on every change, and thousands of instances (each a
  // pool, a health record, a prober) made one edit stall the event loop for seconds.
  instances: z.array(instanceUrl).min(1).max(256, { message: 'at most 256 instances per deployment' }),
  scoring_route: z.string().regex(ORIGIN_PATH, {
    message: 'must be a path such as /score: RFC 3986 path characters only (no space, control character, non-ASCII, ? or #; percent-encode them)',
  }).default('/score'),
  request_settings: requestSettings.prefault({}),
  readiness_probe: probe.optional(),
  // On by default (SPEC §2: without a probe, passive outlier detection still applies);
  // `max_ejection_percent: 0` turns it off.
  outlier_detection: outlierDetection.prefault({}),
  circuit_breaker: circuitBreaker.optional(),
});
export type DeploymentConfig = z.infer<typeof deploymentSchema>;

/**
 * A key as written: a literal (possibly from `${ENV}`) or `sha256:<64 hex>`. Messages
 * never quote it. Surrounding whitespace is refused: a bearer token never carries it, so
 * such a key could never match and the endpoint would be locked out.
 */
const keyText = z.string()
  .refine((s) => s.trim() === s, { message: 'has leading or trailing whitespace (a key is compared exactly; no caller could send it)' })
  .refine(
    (s) => !s.startsWith('sha256:') || /^sha256:[0-9a-fA-F]{64}$/.test(s),
    { message: 'a digest must be sha256: followed by 64 hex digits' },
  );
const keyValue = keyText.refine((s) => s !== '', { message: 'must not be empty' });

const priorityClass = z.enum(['critical', 'standard', 'sheddable']);

const name = z.string().regex(/^[a-z][a-z0-9-]{2,31}$/, {
  message: 'must be 3-32 characters of a-z, 0-9 and -, starting with a letter',
});

export const NO_ENDPOINTS = 'a config needs at least one endpoint';

const cidr = z.string().min(1).describe('an IPv4 or IPv6 CIDR such as 10.0.0.0/8, or a single address');

export const endpointSchema = z.strictObject({
  auth_mode: z.enum(['key', 'aad_token', 'key_or_aad_token']).default('key'),
  keys: z.strictObject({ primary: keyValue.optional(), secondary: keyValue.optional() }).optional(),
  roles: z.array(z.string().min(1)).default([]),
  public_network_access: z.enum(['enabled', 'disabled']).default('enabled'),
  allowed_networks: z.array(cidr).optional(),
  traffic: z.record(z.string(), z.number().int().min(0).max(100)).default({}),
  mirror_traffic: z.record(z.string(), z.number().int({ message: 'must be a whole percent (0-50)' }).min(0).max(50, { message: 'at most 50 (percent of live traffic, as Azure ML allows)' })).default({}),
  mirror_max_body_bytes: z.number().int().min(0).default(1_048_576)
    .describe('requests with larger bodies are not mirrored; live and shadow answers are compared up to this size'),
  mirror_max_in_flight: z.number().int().min(1).default(100)
    .describe('mirrored copies out at once; past it a copy is skipped (beyond SPEC)'),
  mirror_compare: z.strictObject({
    noise_baseline: z.boolean().default(false).describe("learn live's own noise"),
    number_tolerance: z.number().min(0).default(1e-6),
  }).optional(),
  sticky: z.strictObject({ header: headerName }).optional(),
  rate_limit: z.strictObject({
    requests_per_second: z.number().positive(),
    burst: z.number().int().min(1).optional(),
    per: z.enum(['endpoint', 'caller']).default('endpoint'),
  }).optional(),
  priority: z.strictObject({
    header: headerName.default('x-priority'),
    default: priorityClass.default('standard'),
    callers: z.record(z.string().min(1), priorityClass).default({}),
  }).optional(),
  deployments: z.record(name, deploymentSchema).refine((d) => Object.keys(d).length > 0, {
    message: 'an endpoint needs at least one deployment',
  }),
});
export type EndpointConfig = z.infer<typeof endpointSchema>;

export const serverSchema = z.strictObject({
  listen: hostPort.prefault({ port: 8080 }),
  private_listen: hostPort.optional(),
  admin_listen: hostPort.extend({ host: listenHost.default('127.0.0.1') }).prefault({ port: 9090 }),
  host_suffix: z.string().min(2).startsWith('.').toLowerCase().optional(),
  trusted_proxies: z.array(cidr).default([]),
  // 0 is refused, not read as "no limit" (NGINX users would read it that way) nor as
  // "no body" (which would answer every request that has one with 413).
  max_body_bytes: z.number().int().min(1, { message: 'must be at least 1 (0 does not mean unlimited here: it would refuse every body)' }).default(10_485_760),
  request_buffering_bytes: z.number().int().min(0).default(1_048_576)
    .describe('request bodies up to this size are read whole into memory before an upstream connection is taken'),
  request_buffering_memory_bytes: z.number().int().min(0).default(67_108_864)
    .describe('memory all bodies being read may take together; past it, bodies go to the spool (or stream)'),
  request_spooling: z.boolean().default(true)
    .describe('bodies over request_buffering_bytes are read whole into a temporary file first (NGINX proxy_request_buffering); false: they stream'),
  request_spool_dir: z.string().min(1).optional()
    .describe('where spooled bodies are written (default: the OS temporary directory)'),
  client_send_timeout_ms: millis(1).default(30_000)
    .describe('a client that reads nothing of its response this long is cut (NGINX send_timeout)'),
  client_header_timeout_ms: millis(1).default(30_000)
    .describe('request headers not complete by then: 408'),
  client_body_timeout_ms: millis(1).default(30_000)
    .describe('an upload silent this long: 408'),
  shutdown_grace_ms: millis(0).default(30_000),
  load_shedding: z.strictObject({
    max_event_loop_delay_ms: z.number().int().min(1).max(60_000).default(100)
      .describe('past this event-loop delay new requests get 503 Overloaded, sheddable first'),
  }).optional(),
});

export const configSchema = z.strictObject({
  server: serverSchema.prefault({}),
  state: z.strictObject({
    // Never quoted in a message: it may hold a password.
    redis_url: z.string().min(1).refine((s) => {
      const u = parseUrl(s);
      return u !== undefined && (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
    }, { message: 'must be a redis:// or rediss:// URL such as redis://127.0.0.1:6379' }).optional()
      .describe('shared rate limits (and, later, live config) for N replicas'),
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
    keys: z.array(keyText).default([])
      .describe('Bearer keys for /admin: literal, ${ENV} (an unset variable with an empty default is skipped) or sha256:<hex>'),
    entra_roles: z.array(z.string().min(1)).default([]),
  }).prefault({}),
  logging: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    access_log: z.boolean().default(true),
  }).prefault({}),
  // Required and non-empty: a blank or truncated file must not take every endpoint offline
  // on a reload (or start a gateway that answers 404 to everything).
  endpoints: z.record(name, endpointSchema, {
    error: (i) => (i.input === undefined || i.input === null ? NO_ENDPOINTS : undefined),
  }).refine((e) => Object.keys(e).length > 0, { message: NO_ENDPOINTS }),
});

/** The validated, defaulted config (the shape users write, with every default filled in). */
export type GatewayConfig = z.infer<typeof configSchema>;
