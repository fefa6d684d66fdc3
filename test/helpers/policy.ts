import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayConfig } from '../../config/schema.ts';
import type { ListenerKind, PolicyContext, PolicyDeps, PolicyScope } from '../../policies/policy.ts';
import type { Principal } from '../../policies/principal.ts';
import { LiveStateRegistry } from '../../gateway/state/state-registry.ts';
import { config } from './gateway.ts';
import { manualClock } from './clock.ts';

/** A PolicyContext as a policy sees it, without a gateway (DESIGN §6: evaluate() with a fake context). */
export class FakeContext implements PolicyContext {
  listener: ListenerKind = 'public';
  clientIp = '127.0.0.1';
  headers: IncomingHttpHeaders = {};
  endpoint = 'cars';
  deployment = '';
  pinned = false;
  principal: Principal | undefined;
  readonly controller = new AbortController();
  readonly added: [string, string][] = [];
  constructor(init: Partial<Pick<FakeContext, 'listener' | 'clientIp' | 'headers' | 'endpoint' | 'deployment'>> = {}) {
    Object.assign(this, init);
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  addResponseHeader(name: string, value: string): void {
    this.added.push([name, value]);
  }
}

/** Policy deps with a manual clock and a fresh state registry; `keyOverride` answers nothing. */
export function fakeDeps(over: Partial<PolicyDeps> = {}): PolicyDeps & { state: LiveStateRegistry } {
  const logged: unknown[] = [];
  return {
    clock: manualClock().now,
    state: new LiveStateRegistry(),
    health: { readyInstances: () => 1 },
    workers: 1,
    log: { info: (o) => logged.push(o), warn: (o) => logged.push(o), error: (o) => logged.push(o) },
    keyOverride: () => undefined,
    ...over,
  } as PolicyDeps & { state: LiveStateRegistry };
}

/** The scope of endpoint `name` in a config document (validated as a user's would be). */
export function scopeOf(doc: Record<string, unknown>, name = 'cars'): PolicyScope & { gateway: GatewayConfig } {
  const cfg = config(doc);
  const ep = cfg.endpoints[name];
  if (!ep) throw new Error(`no endpoint ${name}`);
  return { gateway: cfg, endpoint: name, endpointConfig: ep };
}
