import { BlockList } from 'node:net';
import { addCidr } from './cidr.ts';
import type { EndpointConfig, GatewayConfig } from './schema.ts';

/**
 * Rules that span fields, each reported with the path a user would fix
 * (`endpoints.cars.traffic: values must sum to 100 or 0, got 90`).
 */
export interface ConfigIssue { readonly path: string; readonly message: string }

function checkCidrs(list: readonly string[] | undefined, path: string, issues: ConfigIssue[]): void {
  list?.forEach((c, i) => {
    const err = addCidr(new BlockList(), c);
    if (err) issues.push({ path: `${path}.${i}`, message: err });
  });
}

/** What an endpoint's checks need to know about the rest of the config. */
export interface EndpointContext {
  readonly hasEntra: boolean;
  readonly hasPrivateListen: boolean;
}

/** Cross-field checks of one schema-valid endpoint. */
export function validateEndpoint(name: string, ep: EndpointConfig, ctx: EndpointContext): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const at = `endpoints.${name}`;
  for (const [d, dep] of Object.entries(ep.deployments)) {
    const seen = new Set<string>();
    dep.instances.forEach((u, i) => {
      const origin = new URL(u).origin;
      if (seen.has(origin)) issues.push({ path: `${at}.deployments.${d}.instances.${i}`, message: `${origin} is listed twice` });
      seen.add(origin);
    });
  }
  let sum = 0;
  for (const [d, w] of Object.entries(ep.traffic)) {
    sum += w;
    if (!ep.deployments[d]) issues.push({ path: `${at}.traffic.${d}`, message: `no deployment named ${d}` });
  }
  if (sum !== 100 && sum !== 0) {
    issues.push({ path: `${at}.traffic`, message: `values must sum to 100 or 0, got ${sum}` });
  }
  const mirrors = Object.entries(ep.mirror_traffic).filter(([, p]) => p > 0);
  if (mirrors.length > 1) {
    issues.push({ path: `${at}.mirror_traffic`, message: 'mirror to one deployment only' });
  }
  for (const [d] of mirrors) {
    if (!ep.deployments[d]) issues.push({ path: `${at}.mirror_traffic.${d}`, message: `no deployment named ${d}` });
    else if ((ep.traffic[d] ?? 0) > 0) {
      issues.push({ path: `${at}.mirror_traffic.${d}`, message: 'a deployment with live traffic cannot also be the mirror' });
    }
  }
  const needsKey = ep.auth_mode === 'key' || ep.auth_mode === 'key_or_aad_token';
  if (needsKey && !ep.keys?.primary && !ep.keys?.secondary) {
    issues.push({ path: `${at}.keys`, message: `auth_mode ${ep.auth_mode} needs keys.primary or keys.secondary` });
  }
  if (ep.auth_mode !== 'key' && !ctx.hasEntra) {
    issues.push({ path: `${at}.auth_mode`, message: `auth_mode ${ep.auth_mode} needs the entra section` });
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

/** Cross-field checks on an already schema-valid config. */
export function validateConfig(cfg: GatewayConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  checkCidrs(cfg.server.trusted_proxies, 'server.trusted_proxies', issues);
  const ctx = { hasEntra: cfg.entra !== undefined, hasPrivateListen: cfg.server.private_listen !== undefined };
  for (const [name, ep] of Object.entries(cfg.endpoints)) issues.push(...validateEndpoint(name, ep, ctx));
  return issues;
}
