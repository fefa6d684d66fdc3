import { createHash } from 'node:crypto';
import { BlockList } from 'node:net';
import { tmpdir } from 'node:os';
import { addCidr } from '../../config/cidr.ts';
import type { DeploymentConfig, EndpointConfig, GatewayConfig } from '../../config/schema.ts';
import { DEPLOYMENT_POLICIES, ENDPOINT_POLICIES } from '../../policies/index.ts';
import type { Policy, PolicyDeps, PolicyFactory, PolicyScope } from '../../policies/policy.ts';
import { OutlierDetector } from '../health/outlier.ts';
import type { InstanceHealth } from '../health/health-registry.ts';
import { SmoothWeightedSplit } from '../routing/split.ts';
import { StickySplit } from '../routing/sticky.ts';
import { Mirror, type MirrorBudget, type MirrorDeps } from '../mirror/mirror.ts';
import type { InstanceRegistry } from '../upstream/instance.ts';
import { checkSpoolRoot } from '../upstream/spool.ts';

/** How request bodies are read: from the `server` settings. */
export interface BodyLimits {
  /** Larger bodies get 413. */
  readonly maxBytes: number;
  /** Bodies up to this size are read whole before an upstream connection is taken. */
  readonly bufferBytes: number;
  /** An upload silent this long gets 408 (or, once streaming upstream, is cut). */
  readonly idleMs: number;
  /** Memory all bodies being read may hold together. */
  readonly memoryBytes: number;
  /** Where bodies over `bufferBytes` are spooled; undefined: they stream. */
  readonly spoolDir: string | undefined;
}

export { hasReadyInstance, type CompiledDeployment } from './deployment.ts';
import type { CompiledDeployment } from './deployment.ts';

/** An endpoint as the request path needs it: policies in order, deployments, the split. */
export interface CompiledEndpoint {
  readonly name: string;
  readonly policies: readonly Policy[];
  readonly deployments: ReadonlyMap<string, CompiledDeployment>;
  /** Live split position, kept in the state registry: a recompile does not restart it. */
  readonly split: SmoothWeightedSplit;
  /**
   * Where a deployment's share goes while it has no ready instance: the same weights, drawn
   * only among deployments that can serve, so the share spills in proportion to them.
   */
  readonly spill: SmoothWeightedSplit;
  /** Counts one request the split meant for `from` that went to `to` instead. */
  readonly spilled: (from: string, to: string) => void;
  /** The longest `max_queue_wait_ms` of the deployments with traffic: how long a request waits for any to be ready. */
  readonly queueWaitMs: number;
  /**
   * How many requests may wait for a ready instance at once: what the deployments' queues
   * would hold (max_concurrent_requests_per_instance × instances, summed).
   */
  readonly readyWaitCapacity: number;
  /** `sticky`: callers that send its header keep one deployment. */
  readonly sticky: StickySplit | undefined;
  /** `mirror_traffic`: a share of split requests copied to the shadow deployment. */
  readonly mirror: Mirror | undefined;
}

/**
 * An immutable compiled config. The request path reads `store.current` once and uses
 * that snapshot to the end, so a reload never changes a request midway.
 */
export interface Snapshot {
  /** sha256 of the canonical config: the admin API's ETag and a log field. */
  readonly version: string;
  readonly config: GatewayConfig;
  readonly endpoints: ReadonlyMap<string, CompiledEndpoint>;
  readonly hostSuffix: string | undefined;
  readonly maxBodyBytes: number;
  /** `client_send_timeout_ms`: a client that reads nothing this long is cut. */
  readonly sendTimeoutMs: number;
  /** How request bodies are read (size limit, buffering, idle timeout). */
  readonly body: BodyLimits;
  readonly trustedProxies: BlockList | undefined;
  /** Every instance origin the snapshot uses (the registries keep these). */
  readonly origins: ReadonlySet<string>;
  /** Legal but noteworthy settings, logged at load. */
  readonly warnings: readonly string[];
}

/** Live pieces compile wires in: they outlive any one snapshot. */
export interface CompileDeps {
  readonly instances: InstanceRegistry;
  readonly policy: PolicyDeps;
  readonly health: HealthEvents;
  readonly mirror: MirrorDeps;
}

/** Where health events go (metrics and logs): they outlive any one snapshot. */
export interface HealthEvents {
  ejected(endpoint: string, deployment: string, instance: InstanceHealth, ms: number, timesEjected: number): void;
  spilled(endpoint: string, from: string, to: string): void;
}

/** Hash of the config as JSON with sorted keys: equal configs, equal versions. */
export function configVersion(cfg: unknown): string {
  const canonical = JSON.stringify(cfg, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22);
}

function policiesFor(factories: readonly PolicyFactory[], scope: PolicyScope, deps: PolicyDeps): readonly Policy[] {
  const out: Policy[] = [];
  for (const f of factories) {
    const p = f.create(scope, deps);
    if (p) out.push(p);
  }
  return Object.freeze(out);
}

function compileDeployment(scope: PolicyScope, name: string, d: DeploymentConfig, deps: CompileDeps): CompiledDeployment {
  const instances = Object.freeze(d.instances.map((o) => deps.instances.acquire(new URL(o).origin)));
  const events = deps.health;
  const outlier = d.outlier_detection
    ? new OutlierDetector(d.outlier_detection, instances, (h, ms, times) => events.ejected(scope.endpoint, name, h, ms, times))
    : undefined;
  return Object.freeze({
    name,
    instances,
    scoringRoute: d.scoring_route,
    timeoutMs: d.request_settings.request_timeout_ms,
    policies: policiesFor(DEPLOYMENT_POLICIES, { ...scope, deployment: { name, config: d } }, deps.policy),
    outlier,
    queueWaitMs: d.request_settings.max_queue_wait_ms,
    concurrencyPerInstance: d.request_settings.max_concurrent_requests_per_instance,
  });
}

function compileEndpoint(cfg: GatewayConfig, name: string, ep: EndpointConfig, deps: CompileDeps, warnings: string[]): CompiledEndpoint {
  const scope: PolicyScope = { gateway: cfg, endpoint: name, endpointConfig: ep };
  const deployments = new Map<string, CompiledDeployment>();
  for (const [dname, d] of Object.entries(ep.deployments)) deployments.set(dname, compileDeployment(scope, dname, d, deps));
  // The split's position is live state: a recompile with the same weights (a key
  // regeneration, an unrelated edit) carries on where it was, so 90/10 stays exact.
  const split = deps.policy.state.get(`split:${name}:${JSON.stringify(ep.traffic)}`, () => new SmoothWeightedSplit(ep.traffic));
  const spill = deps.policy.state.get(`spill:${name}:${JSON.stringify(ep.traffic)}`, () => new SmoothWeightedSplit(ep.traffic));
  if (split.empty) warnings.push(`endpoints.${name}.traffic: no deployment has positive traffic; only requests naming a deployment in azureml-model-deployment are served`);
  let queueWaitMs = 0;
  let readyWaitCapacity = 0;
  for (const [dname, d] of Object.entries(ep.deployments)) {
    readyWaitCapacity += d.request_settings.max_concurrent_requests_per_instance * d.instances.length;
    if ((ep.traffic[dname] ?? 0) > 0) queueWaitMs = Math.max(queueWaitMs, deployments.get(dname)?.queueWaitMs ?? 0);
  }
  const events = deps.health;
  return Object.freeze({
    name,
    mirror: mirrorOf(name, ep, deployments, deps),
    policies: policiesFor(ENDPOINT_POLICIES, scope, deps.policy),
    deployments,
    split,
    spill,
    spilled: (from: string, to: string) => events.spilled(name, from, to),
    queueWaitMs,
    readyWaitCapacity,
    sticky: ep.sticky ? new StickySplit(ep.traffic, ep.sticky.header) : undefined,
  });
}

/**
 * The endpoint's mirror, kept in the state registry by its settings (a reload that keeps
 * them keeps the sampling position and the report), or undefined without `mirror_traffic`.
 */
function mirrorOf(name: string, ep: EndpointConfig, deployments: ReadonlyMap<string, CompiledDeployment>, deps: CompileDeps): Mirror | undefined {
  const target = Object.entries(ep.mirror_traffic).find(([, p]) => p > 0);
  const shadow = target && deployments.get(target[0]);
  if (!target || !shadow) return undefined;
  const noise = ep.mirror_compare?.noise_baseline ?? false;
  const tolerance = ep.mirror_compare?.number_tolerance ?? 1e-6;
  // Every setting that changes a verdict is in the key: changing one starts a fresh report.
  const key = `mirror:${name}:${target[0]}:${target[1]}:${noise}:${tolerance}:${ep.mirror_max_body_bytes}`;
  const mirror = deps.policy.state.get(key, () => new Mirror(name, target[0], target[1], noise, deps.mirror));
  // The copies out are counted per endpoint and shadow, whatever the settings: a reload
  // cannot open a second budget while the first one's copies are still out.
  const budget = deps.policy.state.get(`mirror-budget:${name}:${target[0]}`, (): MirrorBudget => ({ inFlight: 0 }));
  mirror.configure(shadow, ep, budget);
  return mirror;
}

/**
 * Two deployments naming one origin share one instance (pool, in-flight count, health):
 * it is one server. Legal, but worth saying, since weights then do not split the load.
 */
function sharedOrigins(cfg: GatewayConfig, warnings: string[]): Set<string> {
  const users = new Map<string, string[]>();
  for (const [ename, ep] of Object.entries(cfg.endpoints)) {
    for (const [dname, d] of Object.entries(ep.deployments)) {
      for (const u of d.instances) {
        const origin = new URL(u).origin;
        const list = users.get(origin) ?? [];
        list.push(`endpoints.${ename}.deployments.${dname}`);
        users.set(origin, list);
      }
    }
  }
  for (const [origin, list] of users) {
    if (list.length > 1) warnings.push(`${origin} is an instance of ${list.join(' and ')}: they share its connections and health, and each one's concurrency limit counts only its own requests (the instance may see their sum)`);
  }
  return new Set(users.keys());
}

/** The spool root, checked now (its private directory is made on first use); throws, naming the path. */
function spoolRoot(root: string): string {
  try {
    checkSpoolRoot(root);
  } catch (err) {
    throw new Error(`server.request_spool_dir: cannot spool request bodies in ${root} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  return root;
}

/** Compile a validated config into a frozen snapshot. Pure apart from acquiring live state. */
export function compile(cfg: GatewayConfig, deps: CompileDeps, loaderWarnings: readonly string[] = []): Snapshot {
  const warnings: string[] = [...loaderWarnings];
  const origins = sharedOrigins(cfg, warnings);
  const endpoints = new Map<string, CompiledEndpoint>();
  for (const [name, ep] of Object.entries(cfg.endpoints)) endpoints.set(name, compileEndpoint(cfg, name, ep, deps, warnings));
  let trusted: BlockList | undefined;
  if (cfg.server.trusted_proxies.length) {
    trusted = new BlockList();
    for (const c of cfg.server.trusted_proxies) addCidr(trusted, c);
  }
  return Object.freeze({
    version: configVersion(cfg),
    config: cfg,
    endpoints,
    hostSuffix: cfg.server.host_suffix,
    maxBodyBytes: cfg.server.max_body_bytes,
    sendTimeoutMs: cfg.server.client_send_timeout_ms,
    body: Object.freeze({
      maxBytes: cfg.server.max_body_bytes,
      bufferBytes: Math.min(cfg.server.request_buffering_bytes, cfg.server.max_body_bytes),
      idleMs: cfg.server.client_body_timeout_ms,
      memoryBytes: cfg.server.request_buffering_memory_bytes,
      // Checked now: a config whose spool cannot be written fails to load.
      spoolDir: cfg.server.request_spooling ? spoolRoot(cfg.server.request_spool_dir ?? tmpdir()) : undefined,
    }),
    trustedProxies: trusted,
    origins,
    warnings: Object.freeze(warnings),
  });
}
