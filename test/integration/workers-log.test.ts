import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, startUpstream, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor, type Reply } from '../helpers/http.ts';
import { Served } from '../helpers/served.ts';

// `switchyard serve --workers 2`: the primary and both workers write their log to the one
// stdout they share, each write whole lines of at most PIPE_BUF bytes, through a real pipe.
// Lines stay whole when the pipe is full (blocking or not), and a log nobody reads any more
// keeps no process from exiting.

const KEY = 'workers-log-key-0123456789';
/** Requests sent each on a connection of its own (spread over both workers). */
const SPREAD = 24;

let dir: string;
let upstream: TestUpstream;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-workers-log-'));
  upstream = await startUpstream('blue');
});
after(async () => {
  await upstream.close();
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string): Promise<{ file: string; url: string }> {
  const pub = await freePort();
  const admin = await freePort();
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, `
server:
  listen: { host: 127.0.0.1, port: ${pub} }
  admin_listen: { host: 127.0.0.1, port: ${admin} }
endpoints:
  cars:
    keys: { primary: ${KEY} }
    traffic: { blue: 100 }
    deployments:
      blue: { instances: [${upstream.url}], request_settings: { max_concurrent_requests_per_instance: 100 } }
`);
  return { file, url: `http://127.0.0.1:${pub}` };
}

function score(url: string, path = '/endpoints/cars/score'): Promise<Reply> {
  return call(`${url}${path}`, { headers: bearer(KEY), body: '{}' });
}

const FULL_PIPE_REQUESTS = 600;
/** An invocation path that makes a ~1.6 KiB access line. */
const LONG_PATH = `/endpoints/cars/${'p'.repeat(1500)}`;

/**
 * Both workers log at once into a pipe that keeps filling: long paths make ~1.6 KiB access
 * lines, and the reader stops long enough for the pipe (64 KiB) and its own buffer to fill,
 * then catches up, by turns, while both workers write into it and wait for room. A write over
 * PIPE_BUF (4 KiB) is then split around the other worker's: pino's own 8 KiB destination
 * written straight to the pipe failed this in every run tried (through spawn's socket pair
 * instead of a FIFO it never did). Every line must be whole JSON and carry its worker and pid.
 */
async function logIntoFullPipe(s: Served, url: string): Promise<void> {
  const from = s.lines.length;
  const brokenFrom = s.broken.length;
  let next = 0;
  let done = false;
  const stall = (async () => {
    while (!done) {
      s.out.pause();
      await sleep(80);
      s.out.resume();
      await sleep(20);
    }
  })();
  try {
    // 40 clients, each request on a fresh connection (spread over both workers).
    await Promise.all(Array.from({ length: 40 }, async () => {
      while (next < FULL_PIPE_REQUESTS) {
        next++;
        assert.equal((await score(url, LONG_PATH)).status, 200);
      }
    }));
  } finally {
    done = true;
    await stall;
  }
  const broken = (): string[] => s.broken.slice(brokenFrom);
  await waitFor(() => broken().length > 0 || s.find('request', from).length === FULL_PIPE_REQUESTS, 'every access line');
  assert.deepEqual(broken().slice(0, 3).map((l) => `${l.slice(0, 100)}…${l.slice(-100)}`), [], `${broken().length} lines mixed by two writers`);
  for (const l of s.lines.slice(from)) {
    assert.ok(l.worker === 'primary' ? l.pid === s.proc.pid : typeof l.worker === 'number' && typeof l.pid === 'number', JSON.stringify(l));
  }
  assert.equal(new Set(s.find('request', from).map((l) => l.pid)).size, 2, 'both workers logged');
}

describe('two workers logging at once into a full pipe', () => {
  let s: Served;
  let url: string;
  before(async () => {
    const at = await configFile('full-pipe');
    url = at.url;
    s = new Served(at.file, 2, { keepWriteEnd: true });
    await s.line((l) => l.msg === 'switchyard workers ready', 'both workers ready');
  });
  after(() => s.stop());

  test('blocking: every line whole, each saying its worker and pid', async () => {
    await logIntoFullPipe(s, url);
  });

  test('non-blocking (a write may find the pipe full: EAGAIN): lines stay whole and none is lost', async () => {
    s.nonBlocking();
    await logIntoFullPipe(s, url);
  });
});

test('a primary killed outright takes its workers with it, also when nobody reads the log any more', async () => {
  const at = await configFile('killed');
  const s = new Served(at.file, 2);
  let workers: number[] = [];
  // Exited and not yet reaped (a zombie, reparented to whatever reaps orphans here) counts as gone.
  const alive = (pid: number): boolean => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };
  try {
    workers = (await s.line((l) => l.msg === 'switchyard workers ready', 'both workers ready')).worker_pids as number[];
    // The reader goes: every write to stdout fails (EPIPE) from now on.
    s.out.destroy();
    // ~1.6 KiB access lines: each worker's writes fail while it serves, and what it holds
    // when its primary goes is written (and fails) as it exits.
    for (let i = 0; i < SPREAD; i++) {
      // A worker stuck retrying a failed write would never answer: fail, do not hang.
      const stuck = sleep(5_000, undefined, { ref: false }).then(() => { throw new Error('no answer: a worker stuck writing its log?'); });
      assert.equal((await Promise.race([score(at.url, LONG_PATH), stuck])).status, 200);
    }
    s.proc.kill('SIGKILL');
    // A worker whose last write looped on EPIPE would stay, holding the ports it shares.
    await waitFor(() => !workers.some(alive), 'both workers to exit', 5_000);
  } finally {
    // Left behind, a worker would hold this file's test process open (it shares its stderr).
    for (const pid of workers.filter(alive)) process.kill(pid, 'SIGKILL');
    await s.stop();
  }
});
