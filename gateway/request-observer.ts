import { AccessLog } from './access-log.ts';
import type { Logger } from './logger.ts';
import type { Outcome, Termination } from '../policies/policy.ts';
import type { Exchange } from './exchange.ts';
import type { Metrics } from './metrics.ts';
import type { Principal } from '../policies/principal.ts';

interface Series { record(seconds: number): void }

const MAX_CALLERS = 100;
const TERMINATIONS: readonly Termination[] = ['completed', 'client_aborted', 'client_bad_request', 'upstream_reset', 'upstream_timeout', 'shutdown'];

/**
 * Counts and logs every request once, when its response closes (finished or cut off):
 * `switchyard_requests_total`, the duration histogram, and one pino access line with
 * the fields of SPEC §6. Never a key or token: only the principal's type and id.
 */
export class RequestObserver {
  readonly #metrics: Metrics;
  readonly #access: AccessLog;
  readonly #log: Logger;
  readonly #accessLog: boolean;

  constructor(metrics: Metrics, access: Logger, log: Logger, accessLog: boolean) {
    this.#metrics = metrics;
    this.#access = new AccessLog(access);
    this.#log = log;
    this.#accessLog = accessLog && this.#access.enabled;
  }


  /** An unexpected failure inside the gateway (a bug): logged with the request id. */
  error(ctx: Exchange, err: unknown): void {
    this.#log.error({ request_id: ctx.requestId, err }, 'internal error');
  }

  // prom-client hashes label values on every labels() call; the few label sets a gateway
  // has (endpoints and deployments are config names, never client input) are resolved once
  // and kept here, looked up without building a key string.
  readonly #children = new Map<string, Map<string, Map<number, Series>>>();

  #series(endpoint: string, deployment: string, status: number, termination: Termination): Series {
    let byDeployment = this.#children.get(endpoint);
    if (!byDeployment) this.#children.set(endpoint, byDeployment = new Map());
    let byStatus = byDeployment.get(deployment);
    if (!byStatus) byDeployment.set(deployment, byStatus = new Map());
    // One number per (status, termination): no key string built per request.
    const key = status * 8 + TERMINATIONS.indexOf(termination);
    let c = byStatus.get(key);
    if (!c) {
      const count = this.#metrics.requests.labels(endpoint, deployment, String(status), termination);
      const hist = this.#metrics.duration.labels(endpoint, deployment);
      c = { record: (seconds) => { count.inc(); hist.observe(seconds); } };
      byStatus.set(key, c);
    }
    return c;
  }

  // Token callers are people or apps: bounded per endpoint so a crowd cannot blow up the
  // series count; key callers are only ever primary/secondary.
  readonly #callers = new Map<string, Map<string, { inc(): void }>>();

  #caller(endpoint: string, p: Principal): { inc(): void } {
    let byCaller = this.#callers.get(endpoint);
    if (!byCaller) this.#callers.set(endpoint, byCaller = new Map());
    const key = `${p.type}:${p.id}`;
    let c = byCaller.get(key);
    if (!c) {
      if (byCaller.size < MAX_CALLERS) {
        c = this.#metrics.callerRequests.labels(endpoint, p.type, p.id);
        byCaller.set(key, c);
      } else {
        // Past the cap every new caller shares one child per auth type (cached too).
        const other = `${p.type}:\0other`;
        c = byCaller.get(other) ?? this.#metrics.callerRequests.labels(endpoint, p.type, 'other');
        byCaller.set(other, c);
      }
    }
    return c;
  }

  /** Record a request whose response closed (finished or cut off). */
  end(ctx: Exchange, outcome: Outcome): void {
    const seconds = outcome.durationMs / 1e3;
    const status = outcome.status;
    this.#series(ctx.endpoint, ctx.deployment, status, outcome.termination).record(seconds);
    const p = ctx.principal;
    if (p) this.#caller(ctx.endpoint, p).inc();
    if (ctx.throttle !== undefined) this.#metrics.throttled.inc({ endpoint: ctx.endpoint, reason: ctx.throttle });
    if (ctx.error === 'Unauthorized' || ctx.error === 'Forbidden') {
      this.#metrics.authFailures.inc({ endpoint: ctx.endpoint, code: String(status) });
    }
    if (this.#accessLog) this.#access.write(ctx, outcome);
  }
}
