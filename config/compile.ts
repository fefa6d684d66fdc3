import { createHash } from 'node:crypto';
import { BlockList } from 'node:net';
import type { InstanceRegistry, Instance } from '../gateway/upstream/instance.ts';
import { SmoothWeightedSplit } from '../gateway/split.ts';
import { authPolicy, type TokenVerifier } from '../policies/auth/auth-policy.ts';
import { keyDigest, type KeyDigests, type KeySlot } from '../policies/auth/key-digest.ts';
import { networkPolicy } from '../policies/network/network-policy.ts';
import type { Policy } from '../policies/policy.ts';
import type { GatewayConfig, EndpointConfig } from './schema.ts';
import { addCidr } from './cidr.ts';

/** A deployment as the request path needs it. */
export interface CompiledDeployment {
  readonly name: string;
  readonly instances: readonly Instance[];
  readonly scoringRoute: string;
  readonly timeoutMs: number;
}

/** An endpoint as the request path needs it: policies in order, deployments, the split. */
export interface CompiledEndpoint {
  readonly name: string;
  readonly policies: readonly Policy[];
  readonly deployments: ReadonlyMap<string, CompiledDeployment>;
  readonly split: SmoothWeightedSplit;
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
  readonly trustedProxies: BlockList | undefined;
  /** Every instance origin the snapshot uses (the registry keeps these). */
  readonly origins: ReadonlySet<string>;
  /** Legal but noteworthy settings, logged at load. */
  readonly warnings: readonly string[];
}

/** Live pieces compile wires in: they outlive any one snapshot. */
export interface CompileDeps {
  readonly instances: InstanceRegistry;
  /** Regenerated keys (digests) that override the file's, by endpoint and slot. */
  readonly keyOverride: (endpoint: string, slot: KeySlot, configured: string | undefined) => Buffer | undefined;
  readonly verifier: TokenVerifier | undefined;
}

/** Hash of the config as JSON with sorted keys: equal configs, equal versions. */
export function configVersion(cfg: unknown): string {
  const canonical = JSON.stringify(cfg, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 22);
}

function digests(name: string, ep: EndpointConfig, deps: CompileDeps): KeyDigests {
  const slot = (s: KeySlot): Buffer | undefined => {
    const configured = ep.keys?.[s];
    return deps.keyOverride(name, s, configured) ?? (configured ? keyDigest(configured) : undefined);
  };
  return { primary: slot('primary'), secondary: slot('secondary') };
}

function compileEndpoint(name: string, ep: EndpointConfig, deps: CompileDeps, origins: Set<string>, warnings: string[]): CompiledEndpoint {
  const policies: Policy[] = [];
  const net = networkPolicy(name, ep.public_network_access === 'enabled', ep.allowed_networks);
  if (net) policies.push(net);
  policies.push(authPolicy({ endpoint: name, mode: ep.auth_mode, keys: digests(name, ep, deps), roles: ep.roles, verifier: deps.verifier }));

  const deployments = new Map<string, CompiledDeployment>();
  for (const [dname, d] of Object.entries(ep.deployments)) {
    for (const o of d.instances) origins.add(new URL(o).origin);
    deployments.set(dname, Object.freeze({
      name: dname,
      instances: Object.freeze(d.instances.map((o) => deps.instances.acquire(new URL(o).origin))),
      scoringRoute: d.scoring_route,
      timeoutMs: d.request_settings.request_timeout_ms,
    }));
  }
  const split = new SmoothWeightedSplit(ep.traffic);
  if (split.empty) warnings.push(`endpoints.${name}.traffic: no deployment has positive traffic; only requests naming a deployment in azureml-model-deployment are served`);
  const notYet = (['mirror_traffic', 'sticky', 'rate_limit'] as const).filter((k) => {
    const v = ep[k];
    return v !== undefined && (typeof v !== 'object' || Object.keys(v).length > 0);
  });
  for (const k of notYet) warnings.push(`endpoints.${name}.${k}: accepted but not enforced by this version`);
  return Object.freeze({ name, policies: Object.freeze(policies), deployments, split });
}

/** Compile a validated config into a frozen snapshot. Pure apart from acquiring instances. */
export function compile(cfg: GatewayConfig, deps: CompileDeps): Snapshot {
  const origins = new Set<string>();
  const warnings: string[] = [];
  const endpoints = new Map<string, CompiledEndpoint>();
  for (const [name, ep] of Object.entries(cfg.endpoints)) {
    endpoints.set(name, compileEndpoint(name, ep, deps, origins, warnings));
  }
  let trusted: BlockList | undefined;
  if (cfg.server.trusted_proxies.length) {
    trusted = new BlockList();
    for (const c of cfg.server.trusted_proxies) addCidr(trusted, c);
  }
  if (cfg.server.max_body_bytes === 0) warnings.push('server.max_body_bytes: 0 means no request body is accepted');
  return Object.freeze({
    version: configVersion(cfg),
    config: cfg,
    endpoints,
    hostSuffix: cfg.server.host_suffix,
    maxBodyBytes: cfg.server.max_body_bytes,
    trustedProxies: trusted,
    origins,
    warnings: Object.freeze(warnings),
  });
}
