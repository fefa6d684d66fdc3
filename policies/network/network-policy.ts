import { BlockList } from 'node:net';
import type { RequestContext } from '../../gateway/context.ts';
import { GatewayError } from '../../gateway/errors.ts';
import { addCidr } from '../../config/validate.ts';
import { CONTINUE, reject, type Policy, type Verdict } from '../policy.ts';
import { isTrusted } from './client-ip.ts';

/**
 * Where an endpoint may be called from. `public_network_access: disabled` hides the
 * endpoint from the public listener entirely: it answers exactly as an unknown endpoint
 * would (404, same body), so its existence does not leak. `allowed_networks` is a client
 * CIDR allow-list on any listener (403).
 */
export function networkPolicy(endpoint: string, publicAccess: boolean, allowed: readonly string[] | undefined): Policy | undefined {
  if (publicAccess && !allowed?.length) return undefined;
  let list: BlockList | undefined;
  if (allowed?.length) {
    list = new BlockList();
    for (const c of allowed) addCidr(list, c);
  }
  const hidden: Verdict = reject(new GatewayError('EndpointNotFound'));
  const refused: Verdict = reject(new GatewayError('NetworkNotAllowed'));
  return {
    name: `${endpoint}.network`,
    evaluate(ctx: RequestContext): Verdict {
      if (!publicAccess && ctx.listener === 'public') return hidden;
      if (list && !isTrusted(list, ctx.clientIp)) return refused;
      return CONTINUE;
    },
  };
}
