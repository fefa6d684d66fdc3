import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';

/** A Redis for tests: `REDIS_URL` when set, else a `redis-server` of the test's own on a free port. */
export interface TestRedis {
  readonly url: string;
  /** Stop the server this helper started (a `REDIS_URL` one is left alone, only flushed). */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function ping(url: string, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => {});
    try {
      await c.connect();
      if ((await c.ping()) === 'PONG') return;
    } catch (err) {
      if (Date.now() > until) throw new Error(`redis at ${url} did not answer`, { cause: err });
    } finally {
      c.disconnect();
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Start `redis-server` on a free loopback port with nothing saved to disk, or use
 * `REDIS_URL` (then the database is flushed first so tests start empty).
 */
export async function startRedis(): Promise<TestRedis> {
  const given = process.env.REDIS_URL;
  if (given) {
    await ping(given, 5000);
    const c = new Redis(given);
    await c.flushdb();
    c.disconnect();
    return { url: given, stop: async () => {} };
  }
  const port = await freePort();
  const proc: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const failed = new Promise<never>((_, reject) => proc.once('error', (err) => reject(new Error(`cannot start redis-server (${err.message}); install it or set REDIS_URL`))));
  const url = `redis://127.0.0.1:${port}`;
  await Promise.race([ping(url, 5000), failed]);
  return {
    url,
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    }),
  };
}
