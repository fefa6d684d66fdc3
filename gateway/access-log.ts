import pino from 'pino';
import type { Outcome } from '../policies/policy.ts';
import type { Exchange } from './exchange.ts';
import type { Logger } from './logger.ts';

// Characters JSON must escape, plus lone surrogates (written as \u escapes, as pino does).
// eslint-disable-next-line no-control-regex -- control characters are exactly what must be escaped
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A JSON string literal; the common clean string costs one regex test. */
function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/**
 * The per-request access line, written without a generic serializer: the fixed SPEC §6
 * fields in a fixed order, into the access logger's own destination, byte for byte the line
 * pino would write (`{"level":30,"time":…,<bindings>,…,"msg":"request"}`), so readers and
 * tests see no difference. Values a client controls (the path, a token's caller id) are
 * JSON-escaped; the rest are gateway-made names (endpoint and deployment names match
 * `[a-z][a-z0-9-]*`, codes and terminations are closed sets) and need none. No field can
 * hold a key or token. The destination buffers lines (see logger.ts) and is flushed on
 * shutdown with the logger.
 */
export class AccessLog {
  readonly #dest: { write(line: string): unknown };
  readonly #head: string;
  readonly #enabled: boolean;

  constructor(logger: Logger) {
    const l = logger as unknown as Record<symbol, unknown>;
    this.#dest = l[pino.symbols.streamSym] as { write(line: string): unknown };
    // `,"service":"switchyard"` (or a test logger's `,"pid":…,"hostname":…`).
    this.#head = String(l[pino.symbols.chindingsSym] ?? '');
    this.#enabled = logger.isLevelEnabled('info');
  }

  get enabled(): boolean {
    return this.#enabled;
  }

  /** One line for an exchange that ended. */
  write(ex: Exchange, o: Outcome): void {
    const url = ex.req.url ?? '';
    const q = url.indexOf('?');
    const p = ex.principal;
    let line = `{"level":30,"time":${Date.now()}${this.#head},"request_id":"${ex.requestId}","method":${str(ex.req.method ?? '')},"path":${str(q < 0 ? url : url.slice(0, q))}`;
    if (ex.endpoint) line += `,"endpoint":"${ex.endpoint}"`;
    if (ex.deployment) line += `,"deployment":"${ex.deployment}"`;
    line += `,"status":${o.status},"duration_ms":${Math.round(o.durationMs * 1e3) / 1e3}`;
    if (p) line += `,"auth":"${p.type}","caller":${str(p.id)}`;
    line += `,"client_ip":${str(ex.clientIp)}`;
    if (ex.error !== undefined) line += `,"error":"${ex.error}"`;
    line += `,"termination":"${o.termination}"`;
    if (ex.throttle !== undefined) line += `,"throttle":"${ex.throttle}"`;
    this.#dest.write(`${line},"msg":"request"}\n`);
  }
}
