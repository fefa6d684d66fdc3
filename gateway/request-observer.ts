import type { Logger } from './logger.ts';
import type { RequestContext } from './context.ts';
import type { Metrics } from './metrics.ts';

/**
 * Counts and logs every request once, when its response closes (finished or cut off):
 * `switchyard_requests_total`, the duration histogram, and one pino access line with
 * the fields of SPEC §6. Never a key or token: only the principal's type and id.
 */
export class RequestObserver {
  readonly #metrics: Metrics;
  readonly #log: Logger;
  readonly #accessLog: boolean;

  constructor(metrics: Metrics, log: Logger, accessLog: boolean) {
    this.#metrics = metrics;
    this.#log = log;
    this.#accessLog = accessLog;
  }

  /** Start watching a request. */
  begin(ctx: RequestContext): void {
    ctx.res.once('close', () => this.#end(ctx));
  }

  /** An unexpected failure inside the gateway (a bug): logged with the request id. */
  error(ctx: RequestContext, err: unknown): void {
    this.#log.error({ request_id: ctx.requestId, err }, 'internal error');
  }

  #end(ctx: RequestContext): void {
    const res = ctx.res;
    const seconds = Number(process.hrtime.bigint() - ctx.start) / 1e9;
    // A response cut off before it finished is counted as 499 (the client went away), as NGINX does.
    const status = res.writableFinished ? res.statusCode : res.headersSent ? res.statusCode : 499;
    const m = this.#metrics;
    m.requests.labels(ctx.endpoint, ctx.deployment, String(status)).inc();
    m.duration.labels(ctx.endpoint, ctx.deployment).observe(seconds);
    if (!this.#accessLog) return;
    const p = ctx.principal;
    const url = ctx.req.url ?? '';
    const q = url.indexOf('?');
    this.#log.info({
      request_id: ctx.requestId,
      method: ctx.req.method,
      path: q < 0 ? url : url.slice(0, q),
      endpoint: ctx.endpoint || undefined,
      deployment: ctx.deployment || undefined,
      status,
      duration_ms: Math.round(seconds * 1e6) / 1e3,
      auth: p?.type,
      caller: p?.id,
      client_ip: ctx.clientIp,
      error: ctx.errorCode,
      aborted: res.writableFinished ? undefined : true,
    }, 'request');
  }
}
