import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';

/** A Redis for tests: `REDIS_URL` when set, else a `redis-server` of the test's own on a free port. */
export interface TestRedis {
  readonly url: string;
  /** The helper started this server (false with `REDIS_URL`): `stop` and `restart` act on it. */
  readonly own: boolean;
  /** Stop the server this helper started (a `REDIS_URL` one is left alone, only flushed). */
  stop(): Promise<void>;
  /**
   * Start the stopped server again on the same port (stopping it first if it runs), empty,
   * and wait until it answers. Throws for a `REDIS_URL` server.
   */
  restart(): Promise<void>;
  /** Make the server slow: it holds every client's commands for `ms` (`CLIENT PAUSE ms ALL`). */
  pause(ms: number): Promise<void>;
}

/** One command on a connection of its own. */
async function once<T>(url: string, run: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null, disconnectTimeout: 20 });
  c.on('error', () => {});
  try {
    return await run(c);
  } finally {
    c.disconnect();
  }
}

const pause = (url: string) => (ms: number): Promise<void> =>
  once(url, async (c) => void await c.call('CLIENT', 'PAUSE', String(ms), 'ALL'));

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
    // A short disconnectTimeout: ioredis otherwise arms a 2 s timer on a socket that already
    // failed, which kept every test process alive 2 s after its last test.
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, disconnectTimeout: 20 });
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
    await once(given, (c) => c.flushdb());
    return {
      url: given,
      own: false,
      stop: async () => {},
      restart: () => Promise.reject(new Error('cannot restart the REDIS_URL server')),
      pause: pause(given),
    };
  }
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    proc = p;
    const failed = new Promise<never>((_, reject) => p.once('error', (err) => reject(new Error(`cannot start redis-server (${err.message}); install it or set REDIS_URL`))));
    await Promise.race([ping(url, 5000), failed]);
  };
  const stop = (): Promise<void> => new Promise<void>((resolve) => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
  });
  await start();
  return {
    url,
    own: true,
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    pause: pause(url),
  };
}
