import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * The CLI's client of the admin API (SPEC §5): plain HTTP to `SWITCHYARD_ADMIN_URL` with
 * `Authorization: Bearer $SWITCHYARD_ADMIN_KEY`, nothing of the gateway's runtime. Every
 * failure is an {@link AdminError} whose message is one line fit for a terminal: what was
 * asked, of which URL, what came back, and what to check. The key is never in a message.
 */

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:9090';
export const ADMIN_URL_ENV = 'SWITCHYARD_ADMIN_URL';
export const ADMIN_KEY_ENV = 'SWITCHYARD_ADMIN_KEY';

/** The default deadline of one call (connect to last byte). */
const DEFAULT_TIMEOUT_MS = 10_000;
/** A response larger than this is refused (the biggest one, `/metrics`, is far smaller). */
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/**
 * What went wrong, for a command to choose its exit code and wording:
 * `config` (SWITCHYARD_ADMIN_URL / SWITCHYARD_ADMIN_KEY unusable: nothing was sent),
 * `unreachable` (no connection, or it broke), `timeout`, `unauthorized` (401), `forbidden` (403),
 * `not_found` (404), `http` (any other non-2xx), `bad_response` (not what the admin API answers).
 */
export type AdminErrorKind = 'config' | 'unreachable' | 'timeout' | 'unauthorized' | 'forbidden' | 'not_found' | 'http' | 'bad_response';

/** One field error of a refused edit: the field's path and what is wrong with it. */
export interface AdminErrorDetail {
  readonly path: string;
  readonly message: string;
}

export class AdminError extends Error {
  readonly kind: AdminErrorKind;
  /** The HTTP status, when there was an answer. */
  readonly status: number | undefined;
  /** The gateway's error code (`EndpointNotFound`, `NotFound`, ...), from its JSON error body. */
  readonly code: string | undefined;
  /** Every field error of a refused edit (`InvalidConfig`'s `details`), printable; empty otherwise. */
  readonly details: readonly AdminErrorDetail[];
  constructor(kind: AdminErrorKind, message: string, status?: number, code?: string, details: readonly AdminErrorDetail[] = []) {
    super(message);
    this.name = 'AdminError';
    this.kind = kind;
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export interface AdminClientOptions {
  /** The admin listener's base URL (default {@link DEFAULT_ADMIN_URL}); a path prefix is kept. */
  readonly url?: string | undefined;
  /** An admin key or an Entra token; unset or empty: no Authorization header. */
  readonly key?: string | undefined;
  /** Deadline of one call, in ms (default 10 s). */
  readonly timeoutMs?: number | undefined;
}

export interface AdminRequest {
  /** Default GET. */
  readonly method?: string;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** An ETag for `If-Match` (a write against a version read before). */
  readonly ifMatch?: string;
  /** Send the Authorization header (default true; `/metrics`, `/healthz`, `/readyz` need none). */
  readonly auth?: boolean;
  /** Query parameters (`{dry_run: 'true'}`); kept apart from `path`, which is set as the URL's path. */
  readonly query?: Readonly<Record<string, string>>;
}

export interface AdminResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The `ETag` header, quotes included, or undefined. */
  readonly etag: string | undefined;
  /** The gateway's clock when it answered (the `Date` header, to the second), or undefined. */
  readonly date: number | undefined;
}

export interface AdminJson<T> extends AdminResponse {
  readonly body: T;
}

/** Control characters (C0, DEL, C1) replaced: server-sent text never drives the terminal. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** One line of server-sent text for a message: printable and at most `max` characters. */
function clip(s: string, max = 300): string {
  const p = printable(s).trim();
  return p.length > max ? `${p.slice(0, max)}…` : p;
}

/** A bearer credential may be sent only if it is visible ASCII (RFC 6750 b64token and then some). */
const BEARER = /^[\x21-\x7e]+$/;

/**
 * Parse and check SWITCHYARD_ADMIN_URL: http(s), no credentials (they would be sent to no one
 * and would show in messages), no query or fragment; a trailing slash is dropped.
 */
function parseBase(text: string): URL {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new AdminError('config', `${ADMIN_URL_ENV} is not a URL (expected something like ${DEFAULT_ADMIN_URL})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new AdminError('config', `${ADMIN_URL_ENV} must be an http:// or https:// URL (expected something like ${DEFAULT_ADMIN_URL})`);
  }
  if (u.username || u.password) {
    throw new AdminError('config', `${ADMIN_URL_ENV} must not contain user:password@; put the admin key in ${ADMIN_KEY_ENV}`);
  }
  if (u.search || u.hash) throw new AdminError('config', `${ADMIN_URL_ENV} must not have a query or fragment`);
  u.pathname = u.pathname.replace(/\/+$/, '');
  return u;
}

/** The `details` of an error body, each made printable (at most 200: a message, not a dump). */
function detailsOf(v: unknown): AdminErrorDetail[] {
  if (!Array.isArray(v)) return [];
  return v.slice(0, 200).flatMap((d: { path?: unknown; message?: unknown } | null) =>
    (d && typeof d.message === 'string'
      ? [{ path: clip(typeof d.path === 'string' ? d.path : '(edit)', 200), message: clip(d.message) }]
      : []));
}

/** The gateway's JSON error body (SPEC §4), if that is what `text` is. */
function gatewayError(text: string): { code: string; message: string; requestId: string | undefined; details: AdminErrorDetail[] } | undefined {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown; request_id?: unknown; details?: unknown } } | null)?.error;
    if (typeof e?.code !== 'string') return undefined;
    return {
      code: e.code,
      message: typeof e.message === 'string' ? e.message : '',
      requestId: typeof e.request_id === 'string' ? e.request_id : undefined,
      details: detailsOf(e.details),
    };
  } catch {
    return undefined;
  }
}

export class AdminClient {
  readonly #base: URL;
  readonly #key: string | undefined;
  readonly #timeoutMs: number;

  /** Throws AdminError(`config`) when the URL or key cannot be used. */
  constructor(opts: AdminClientOptions = {}) {
    this.#base = parseBase(opts.url || DEFAULT_ADMIN_URL);
    const key = opts.key || undefined;
    if (key !== undefined && !BEARER.test(key)) {
      // Never quoted: it is a secret, and the likely fault (a stray newline or space) would not show anyway.
      throw new AdminError('config', `${ADMIN_KEY_ENV} contains spaces, line breaks or non-ASCII characters; an admin key never does (check how it was set)`);
    }
    this.#key = key;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** From SWITCHYARD_ADMIN_URL and SWITCHYARD_ADMIN_KEY. */
  static fromEnv(env: NodeJS.ProcessEnv = process.env, opts: Omit<AdminClientOptions, 'url' | 'key'> = {}): AdminClient {
    return new AdminClient({ ...opts, url: env[ADMIN_URL_ENV], key: env[ADMIN_KEY_ENV] });
  }

  /** The base URL, as messages show it (it has no credentials). */
  get url(): string {
    return this.#base.href.replace(/\/$/, '');
  }

  /** Whether a key will be sent. */
  get hasKey(): boolean {
    return this.#key !== undefined;
  }

  /**
   * One call. A 2xx resolves; anything else rejects with an AdminError saying what the gateway
   * said. Redirects are not followed (the admin API never sends one; following would carry the key).
   */
  async request(path: string, req: AdminRequest = {}): Promise<AdminResponse> {
    const method = req.method ?? 'GET';
    const what = `${method} ${path}`;
    const res = await this.#send(path, method, req);
    if (res.status >= 200 && res.status < 300) return res;
    throw this.#failure(what, res);
  }

  /** A call whose 2xx answer must be JSON. */
  async json<T>(path: string, req: AdminRequest = {}): Promise<AdminJson<T>> {
    const res = await this.request(path, req);
    let body: T;
    try {
      body = JSON.parse(res.text) as T;
    } catch {
      throw new AdminError('bad_response',
        `${this.url} answered ${req.method ?? 'GET'} ${path} with something other than JSON; is ${ADMIN_URL_ENV} the gateway's admin listener (server.admin_listen)?`,
        res.status);
    }
    return { ...res, body };
  }

  /** `GET /admin/endpoints`: every endpoint's redacted config and live state. */
  endpoints<T = unknown>(): Promise<AdminJson<T>> {
    return this.json<T>('/admin/endpoints');
  }

  /** `GET /admin/endpoints/{name}`; an unknown name rejects with kind `not_found`. */
  endpoint<T = unknown>(name: string): Promise<AdminJson<T>> {
    return this.json<T>(`/admin/endpoints/${encodeURIComponent(name)}`);
  }

  /** `GET /admin/endpoints/{name}/mirror`: the shadow report, or undefined when the endpoint has no mirror. */
  async mirror<T = unknown>(name: string): Promise<AdminJson<T> | undefined> {
    try {
      return await this.json<T>(`/admin/endpoints/${encodeURIComponent(name)}/mirror`);
    } catch (err) {
      // NotFound: the endpoint exists but has no mirror_traffic (EndpointNotFound still throws).
      if (err instanceof AdminError && err.kind === 'not_found' && err.code === 'NotFound') return undefined;
      throw err;
    }
  }

  /**
   * `PUT` (create or replace: the endpoint's config), `PATCH` (a JSON merge patch) or `DELETE`
   * of `/admin/endpoints/{name}`. `ifMatch`: write only over that version (412 otherwise);
   * `dryRun`: every check runs and the answer says what would change, but nothing is stored.
   */
  editEndpoint<T = unknown>(method: 'PUT' | 'PATCH' | 'DELETE', name: string, opts: { body?: unknown; ifMatch?: string | undefined; dryRun?: boolean } = {}): Promise<AdminJson<T>> {
    return this.json<T>(`/admin/endpoints/${encodeURIComponent(name)}`, {
      method,
      body: opts.body,
      ...(opts.ifMatch !== undefined ? { ifMatch: opts.ifMatch } : {}),
      ...(opts.dryRun ? { query: { dry_run: 'true' } } : {}),
    });
  }

  /** `POST /admin/endpoints/{name}/keys/regenerate`: the answer holds the new key (shown once). */
  regenerateKey<T = unknown>(name: string, keyType: 'primary' | 'secondary'): Promise<AdminJson<T>> {
    return this.json<T>(`/admin/endpoints/${encodeURIComponent(name)}/keys/regenerate`, { method: 'POST', body: { key_type: keyType } });
  }

  /** `GET /admin/audit`: the last changes, newest first. */
  audit<T = unknown>(): Promise<AdminJson<T>> {
    return this.json<T>('/admin/audit');
  }

  /** `GET /metrics` (Prometheus text; no auth). */
  async metrics(): Promise<AdminResponse> {
    return this.request('/metrics', { auth: false });
  }

  #failure(what: string, res: AdminResponse): AdminError {
    const e = gatewayError(res.text);
    const said = e ? `${e.code}${e.message ? `: ${clip(e.message)}` : ''}` : clip(res.text, 120) || 'no body';
    const rid = e?.requestId ? ` (request id ${clip(e.requestId, 64)})` : '';
    const at = `the admin API at ${this.url}`;
    switch (res.status) {
      case 401:
        return new AdminError('unauthorized', this.#key === undefined
          ? `${at} needs an admin key (401): ${ADMIN_KEY_ENV} is not set; set it to one of the gateway's admin.keys`
          : `${at} refused ${ADMIN_KEY_ENV} (401): the key is wrong or no longer configured; use one of the gateway's admin.keys (or an Entra token with one of admin.entra_roles)`,
        401, e?.code);
      case 403:
        return new AdminError('forbidden',
          `${at} accepted the credential in ${ADMIN_KEY_ENV} but it does not grant this (403): ${said}; an Entra token needs one of admin.entra_roles${rid}`,
          403, e?.code);
      case 404:
        return new AdminError('not_found', `${what}: 404 ${said}${rid}`, 404, e?.code);
      default:
        return new AdminError('http', `${what} at ${this.url}: ${res.status} ${said}${rid}`, res.status, e?.code, e?.details);
    }
  }

  #send(path: string, method: string, req: AdminRequest): Promise<AdminResponse> {
    const url = new URL(this.#base.href);
    // A bare origin's pathname reads back as '/' (the URL class restores it): no '//admin'.
    url.pathname = `${this.#base.pathname.replace(/\/+$/, '')}${path}`;
    for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v);
    const headers: Record<string, string | number> = { accept: 'application/json, text/plain;q=0.9' };
    if (req.auth !== false && this.#key !== undefined) headers.authorization = `Bearer ${this.#key}`;
    if (req.ifMatch !== undefined) headers['if-match'] = req.ifMatch;
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<AdminResponse>((resolve, reject) => {
      let settled = false;
      let r: ClientRequest | undefined;
      const settle = (err: AdminError | undefined, res?: AdminResponse): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          r?.destroy();
          reject(err);
        } else {
          resolve(res!);
        }
      };
      const timer = setTimeout(() => {
        settle(new AdminError('timeout', `the admin API at ${this.url} did not answer ${method} ${path} within ${this.#timeoutMs / 1000} s`));
      }, this.#timeoutMs);
      const read = (res: IncomingMessage): void => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            settle(new AdminError('bad_response', `${this.url} answered ${method} ${path} with more than ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const date = res.headers.date === undefined ? Number.NaN : Date.parse(res.headers.date);
          const etag = res.headers.etag;
          settle(undefined, {
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
            etag: typeof etag === 'string' ? etag : undefined,
            date: Number.isNaN(date) ? undefined : date,
          });
        });
        res.on('error', (err: NodeJS.ErrnoException) => settle(this.#network(err)));
        // Cut off before the end (after 'end' this does nothing).
        res.on('close', () => settle(this.#network({ code: 'ECONNRESET' })));
      };
      try {
        // One connection per call, closed after it: nothing keeps the CLI's process alive.
        r = send(url, { method, headers, agent: false }, read);
      } catch (err) {
        // A request that cannot even be built (never the key's doing: it was checked above).
        settle(new AdminError('config', `cannot send ${method} ${path} to ${this.url} (${(err as NodeJS.ErrnoException).code ?? 'invalid request'})`));
        return;
      }
      r.on('error', (err: NodeJS.ErrnoException) => settle(this.#network(err)));
      r.end(payload);
    });
  }

  #network(err: { readonly code?: unknown }): AdminError {
    // The code, not the message: a message could quote a header (and so the key).
    const code = typeof err.code === 'string' ? err.code : 'connection failed';
    return new AdminError('unreachable',
      `cannot reach the admin API at ${this.url} (${code}); is the gateway running, and is ${ADMIN_URL_ENV} its admin listener (server.admin_listen, default ${DEFAULT_ADMIN_URL})?`);
  }
}
