import { BlockList } from 'node:net';
import { addCidr } from '../../config/cidr.ts';
import { GatewayError } from '../../gateway/errors.ts';
import { CONTINUE, reject, type PolicyContext, type PolicyFactory, type Verdict } from '../policy.ts';
import { isTrusted } from '../shared/client-ip.ts';

/**
 * Where an endpoint may be called from. `public_network_access: disabled` hides the
 * endpoint from the public listener entirely: it answers exactly as an unknown endpoint
 * would (404, same body), so its existence does not leak. `allowed_networks` is a client
 * CIDR allow-list on any listener (403).
 */
export const networkFactory: PolicyFactory = {
  type: 'network',
  stage: 'endpoint',
  create(scope) {
    const ep = scope.endpointConfig;
    const publicAccess = ep.public_network_access === 'enabled';
    const allowed = ep.allowed_networks;
    if (publicAccess && !allowed?.length) return undefined;
    let list: BlockList | undefined;
    if (allowed?.length) {
      list = new BlockList();
      for (const c of allowed) addCidr(list, c);
    }
    const hidden = reject(new GatewayError('EndpointNotFound'));
    const refused = reject(new GatewayError('NetworkNotAllowed'));
    return {
      name: `${scope.endpoint}.network`,
      evaluate(ctx: PolicyContext): Verdict {
        if (!publicAccess && ctx.listener === 'public') return hidden;
        if (list && !isTrusted(list, ctx.clientIp)) return refused;
        return CONTINUE;
      },
    };
  },
};
