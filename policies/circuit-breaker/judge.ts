import type { Outcome } from '../policy.ts';

/** What one exchange tells a deployment's breaker. */
export type Judgement = 'failure' | 'success' | 'ignore';

/**
 * Whether an exchange shows the deployment failing. Only what the instances did counts:
 *
 * - failure: the instance refused the connection, reset it or sent a malformed response
 *   (502 `BadGateway`), did not answer within `request_timeout_ms` (504 `GatewayTimeout`),
 *   failed or stalled midway through a streamed response (`upstream_reset` /
 *   `upstream_timeout`), or answered 5xx itself.
 * - success: the model answered below 500 (a 4xx is the caller's mistake, not the model's).
 * - ignore: nothing was learned about the model: the client left (499) or sent a bad or
 *   stalled request, the gateway was shutting down, or the request never reached an
 *   instance because the gateway turned it away (a later policy's 429, `NoReadyInstance`,
 *   which is health checking's business, or any other gateway error).
 *
 * `connectFailed` alone decides nothing: a refused connect that no other instance could
 * take ends as `BadGateway`, and one retried on another instance ended however that
 * instance answered.
 */
export function judge(o: Outcome): Judgement {
  switch (o.termination) {
    case 'client_aborted':
    case 'client_bad_request':
    case 'shutdown':
      return 'ignore';
    case 'upstream_reset':
    case 'upstream_timeout':
      return 'failure';
    case 'completed':
      break;
  }
  const e = o.error;
  if (e !== undefined) return e === 'BadGateway' || e === 'GatewayTimeout' ? 'failure' : 'ignore';
  return o.status >= 500 ? 'failure' : 'success';
}
