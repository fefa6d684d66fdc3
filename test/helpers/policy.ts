import type { IncomingHttpHeaders } from 'node:http';
import type { GatewayConfig } from '../../config/schema.ts';
import type { ListenerKind, PolicyContext, PolicyDeps, PolicyScope, PriorityClass } from '../../policies/policy.ts';
import type { Principal } from '../../policies/principal.ts';
import { LiveStateRegistry } from '../../gateway/state/state-registry.ts';
import { config } from './gateway.ts';
import { manualClock, type ManualClock } from './clock.ts';
import { CoarseTimers } from '../../gateway/coarse-timers.ts';
import type { DeploymentLoad, PolicyGauges } from '../../policies/policy.ts';

/** Gauge readers a policy registered, by `endpoint/deployment`. */
export class RecordingGauges implements PolicyGauges {
  readonly loads = new Map<string, () => DeploymentLoad>();
  readonly breakers = new Map<string, () => number>();
  deploymentLoad(endpoint: string, deployment: string, read: () => DeploymentLoad): void {
    this.loads.set(`${endpoint}/${deployment}`, read);
  }
  breakerState(endpoint: string, deployment: string, read: () => number): void {
    this.breakers.set(`${endpoint}/${deployment}`, read);
  }
}

/** What {@link fakeDeps} returns: the deps plus the handles a test moves (clock, timers) and reads (gauges, logs). */
export type FakeDeps = PolicyDeps & {
  readonly state: LiveStateRegistry;
  readonly manual: ManualClock;
  readonly timers: CoarseTimers;
  readonly gauges: RecordingGauges;
  readonly logged: unknown[];
};

/** A PolicyContext as a policy sees it, without a gateway (DESIGN §6: evaluate() with a fake context). */
export class FakeContext implements PolicyContext {
  listener: ListenerKind = 'public';
  clientIp = '127.0.0.1';
  headers: IncomingHttpHeaders = {};
  endpoint = 'cars';
  deployment = '';
  pinned = false;
  principal: Principal | undefined;
  priority: PriorityClass = 'standard';
  readonly controller = new AbortController();
  readonly added: [string, string][] = [];
  constructor(init: Partial<Pick<FakeContext, 'listener' | 'clientIp' | 'headers' | 'endpoint' | 'deployment' | 'principal' | 'priority' | 'pinned'>> = {}) {
    Object.assign(this, init);
  }
  get signal(): AbortSignal {
    return this.controller.signal;
  }
  addResponseHeader(name: string, value: string): void {
    this.added.push([name, value]);
  }
}

/**
 * Policy deps with a manual clock, deadlines on that clock (call `timers.tick()` after
 * `manual.advance()`), a fresh state registry, recording gauges; `keyOverride` answers
 * nothing and there is no shared store unless given.
 */
export function fakeDeps(over: Partial<PolicyDeps> = {}): FakeDeps {
  const logged: unknown[] = [];
  const manual = manualClock();
  return {
    clock: manual.now,
    manual,
    state: new LiveStateRegistry(),
    health: { readyInstances: () => 1 },
    workers: 1,
    log: { info: (o) => logged.push(o), warn: (o) => logged.push(o), error: (o) => logged.push(o) },
    logged,
    keyOverride: () => undefined,
    timers: new CoarseTimers(10, manual.now),
    gauges: new RecordingGauges(),
    shared: undefined,
    ...over,
  } as FakeDeps;
}

/** The scope of endpoint `name` in a config document (validated as a user's would be). */
export function scopeOf(doc: Record<string, unknown>, name = 'cars'): PolicyScope & { gateway: GatewayConfig } {
  const cfg = config(doc);
  const ep = cfg.endpoints[name];
  if (!ep) throw new Error(`no endpoint ${name}`);
  return { gateway: cfg, endpoint: name, endpointConfig: ep };
}
