import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

/** A response read whole. */
export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  json<T = Record<string, unknown>>(): T;
}

export interface CallOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  /** Source address, to act as a client on another network (127.0.0.x). */
  readonly localAddress?: string;
}

/** One HTTP request on a fresh connection (so localAddress applies), read whole. */
export function call(url: string, opts: CallOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, {
      method: opts.method ?? (opts.body !== undefined ? 'POST' : 'GET'),
      headers: { ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}), ...opts.headers },
      localAddress: opts.localAddress,
      agent: false,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          json: <T>() => JSON.parse(body) as T,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Bearer header. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
