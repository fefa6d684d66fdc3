import { GatewayError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import { hasReadyInstance, type CompiledDeployment, type CompiledEndpoint } from '../snapshot/compile.ts';
import type { StickySplit } from './sticky.ts';

const NO_POSITIVE_TRAFFIC = new GatewayError('NoPositiveTraffic');

/** No deployment that could take the request has a ready instance now: wait for one. */
export const NONE_READY = Symbol('switchyard.noneReady');

/**
 * Which deployment serves the request: the one the caller names in
 * `azureml-model-deployment` (pinned: bypasses `traffic` and `sticky`, works at 0% and for
 * the mirror deployment), else, when the endpoint is sticky and the request carries its
 * header, the caller's own deployment ({@link StickySplit}), else the next in the
 * endpoint's weighted split. A split or sticky pick without a ready instance spills to the
 * deployments that have one, in proportion to their weights (`switchyard_spill_total`);
 * with none anywhere, or a pinned deployment without one, the caller waits for readiness
 * ({@link NONE_READY}).
 */
export function selectDeployment(ex: Exchange, endpoint: CompiledEndpoint, now: number): CompiledDeployment | GatewayError | typeof NONE_READY {
  const named = ex.req.headers['azureml-model-deployment'];
  if (typeof named === 'string' && named !== '') {
    ex.pinned = true;
    const d = endpoint.deployments.get(named);
    if (!d) return new GatewayError('DeploymentNotFound', `No deployment named ${JSON.stringify(named.slice(0, 64))} on this endpoint.`);
    if (hasReadyInstance(d, now)) return d;
    // Chosen, though not ready yet: the wait (and its 503) belong to this deployment.
    ex.deployment = d.name;
    return NONE_READY;
  }
  const sticky = endpoint.sticky;
  if (sticky !== undefined) {
    const key = sticky.keyOf(ex.req.headers, ex.req.rawHeaders);
    if (key !== undefined) return stickyDeployment(endpoint, sticky, key, now);
  }
  const name = endpoint.split.next();
  const d = name !== undefined ? endpoint.deployments.get(name) : undefined;
  if (!d) return NO_POSITIVE_TRAFFIC;
  if (hasReadyInstance(d, now)) return d;
  const other = endpoint.spill.next(readyIn(endpoint, now));
  const to = other !== undefined ? endpoint.deployments.get(other) : undefined;
  if (!to) return NONE_READY;
  endpoint.spilled(d.name, to.name);
  return to;
}

/**
 * Caller `key`'s deployment. Without a ready instance there, the caller goes to its
 * runner-up among the deployments that have one: the same one on every request while the
 * outage lasts, and over many callers in proportion to the weights (counted as a spill).
 */
function stickyDeployment(endpoint: CompiledEndpoint, sticky: StickySplit, key: string, now: number): CompiledDeployment | GatewayError | typeof NONE_READY {
  const deployments = endpoint.deployments;
  const name = sticky.pick(key);
  const d = name !== undefined ? deployments.get(name) : undefined;
  if (!d) return NO_POSITIVE_TRAFFIC;
  if (hasReadyInstance(d, now)) return d;
  const other = sticky.pick(key, readyIn(endpoint, now, name));
  const to = other !== undefined ? deployments.get(other) : undefined;
  if (!to) return NONE_READY;
  endpoint.spilled(d.name, to.name);
  return to;
}

/** Whether a deployment (by name, other than `except`) has a ready instance at `now`: what a spill may go to. */
function readyIn(endpoint: CompiledEndpoint, now: number, except?: string): (name: string) => boolean {
  return (n) => {
    const c = n !== except ? endpoint.deployments.get(n) : undefined;
    return c !== undefined && hasReadyInstance(c, now);
  };
}
