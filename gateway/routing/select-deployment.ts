import { GatewayError } from '../errors.ts';
import type { Exchange } from '../exchange.ts';
import type { CompiledDeployment, CompiledEndpoint } from '../snapshot/compile.ts';

const NO_POSITIVE_TRAFFIC = new GatewayError('NoPositiveTraffic');

/**
 * Which deployment serves the request: the one the caller names in
 * `azureml-model-deployment` (pinned: bypasses `traffic`, works at 0% and for the mirror
 * deployment), else the next in the endpoint's weighted split.
 */
export function selectDeployment(ex: Exchange, endpoint: CompiledEndpoint): CompiledDeployment | GatewayError {
  const named = ex.req.headers['azureml-model-deployment'];
  if (typeof named === 'string' && named !== '') {
    ex.pinned = true;
    return endpoint.deployments.get(named)
      ?? new GatewayError('DeploymentNotFound', `No deployment named ${JSON.stringify(named.slice(0, 64))} on this endpoint.`);
  }
  const name = endpoint.split.next();
  return (name !== undefined && endpoint.deployments.get(name)) || NO_POSITIVE_TRAFFIC;
}
