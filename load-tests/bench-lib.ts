/**
 * Helpers for load-tests/bench.ts: free ports, child processes (optionally pinned to a CPU
 * with taskset) that are always killed at the end, readiness polling, one load run, medians
 * and markdown tables.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { LoadResult, LoadSpec } from './load-runner.ts';

export const HERE = import.meta.dirname;

/** Whether an executable `name` is on PATH. */
export function onPath(name: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch { /* next */ }
  }
  return false;
}

/** Pinning as in shared/research/proxy-baseline.md: proxies on CPU 0, backend + load generator on CPU 1. */
export const PIN = onPath('taskset') && availableParallelism() >= 2;
export const CPU_PROXY = 0;
export const CPU_LOAD = 1;

/**
 * A port nobody listens on right now on 127.0.0.1, for a process that must be told its port
 * up front. Picked outside the kernel's ephemeral range (32768-60999 on Linux), so no outgoing
 * connection made meanwhile (the load's, a test's running beside it) can take it before the
 * process binds it; free when checked (bind, then close).
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const srv = createServer();
    srv.unref();
    const ok = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((r) => srv.close(() => r()));
      return port;
    }
  }
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** stderr (and stdout unless discarded) go here. */
  log: string;
  exited: boolean;
}

const procs = new Set<Proc>();

/**
 * Start `node script args` (through `taskset -c cpu` when pinning is possible; `cpu`
 * undefined: not pinned, the scheduler's choice). stdout goes to the log file, or to
 * /dev/null when `discardStdout` (Switchyard's access log).
 */
export function spawnNode(name: string, script: string, args: string[], opts: { cpu: number | undefined; logDir: string; discardStdout?: boolean; nodeFlags?: readonly string[] }): Proc {
  return spawnCmd(name, process.execPath, [...(opts.nodeFlags ?? []), script, ...args], opts);
}

/** Start any command, pinned like {@link spawnNode} (nginx for the reference row). */
export function spawnCmd(name: string, command: string, args: string[], opts: { cpu: number | undefined; logDir: string; discardStdout?: boolean }): Proc {
  const log = join(opts.logDir, `${name}.log`);
  const fd = openSync(log, 'a');
  const [cmd, argv] = PIN && opts.cpu !== undefined
    ? ['taskset', ['-c', String(opts.cpu), command, ...args]]
    : [command, args];
  const child = spawn(cmd, argv, { stdio: ['ignore', opts.discardStdout ? 'ignore' : fd, fd], cwd: join(HERE, '..') });
  closeSync(fd);
  const proc: Proc = { name, child, log, exited: false };
  procs.add(proc);
  child.on('exit', () => { proc.exited = true; procs.delete(proc); });
  child.on('error', () => { proc.exited = true; procs.delete(proc); });
  return proc;
}

/**
 * CPU time (user + system, ms) and resident memory (MiB) of a process, from /proc (Linux);
 * undefined elsewhere or once it has exited.
 */
export function procStats(pid: number | undefined): { cpuMs: number; rssMiB: number } | undefined {
  if (!pid) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpuMs: (ticks * 1000) / CLOCK_TICKS, rssMiB: rss ? Number(rss[1]) / 1024 : NaN };
  } catch {
    return undefined;
  }
}
/** Linux's USER_HZ: /proc times are in these ticks. */
const CLOCK_TICKS = 100;

/** The last lines of a process's log, for error messages. */
export function logTail(proc: Proc, lines = 15): string {
  try {
    return readFileSync(proc.log, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Kill one process: SIGTERM, then SIGKILL after `graceMs`. */
export async function kill(proc: Proc, graceMs = 2000): Promise<void> {
  if (proc.exited) return;
  const gone = new Promise<void>((resolve) => proc.child.once('exit', () => resolve()));
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

export async function killAll(): Promise<void> {
  await Promise.all([...procs].map((p) => kill(p)));
}

const tempDirs: string[] = [];

/** A temporary directory (logs, configs), removed when the process exits. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-'));
  tempDirs.push(dir);
  return dir;
}

/** Kill every child and remove temp dirs on normal exit, error, SIGINT and SIGTERM. */
export function installCleanup(): void {
  process.on('exit', () => {
    for (const p of procs) p.child.kill('SIGKILL');
    for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  });
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\n${sig}: stopping children...\n`);
    void killAll().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Status of one request, 0 when it could not be made. */
export async function httpStatus(url: string, init: RequestInit = {}): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(2000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: String(err) };
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `check` every 100 ms until true; fail after `timeoutMs` or when `proc` exits. */
export async function waitReady(proc: Proc, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exited) throw new Error(`${proc.name} exited during start-up:\n${logTail(proc)}`);
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`${proc.name} not ready after ${timeoutMs} ms:\n${logTail(proc)}`);
}

/** One load-generator run in a child process pinned with the backend; bounded in time. */
export function runLoad(spec: LoadSpec, logDir: string): Promise<LoadResult> {
  return runJsonChild<LoadResult>('load-runner', join(HERE, 'load-runner.ts'), spec, spec.durationS + 2 * spec.warmupS + 30, logDir);
}

/**
 * Run `script '<json arg>'` in a child pinned to the load generator's CPU, killed after
 * `timeoutS`; its last stdout line is the JSON result.
 */
export async function runJsonChild<T>(name: string, script: string, arg: unknown, timeoutS: number, logDir: string): Promise<T> {
  const proc = spawnNode(name, script, [JSON.stringify(arg)], { cpu: CPU_LOAD, logDir, discardStdout: false });
  const timer = setTimeout(() => void kill(proc), timeoutS * 1000);
  await new Promise<void>((resolve) => {
    if (proc.exited) resolve();
    else proc.child.once('exit', () => resolve());
  });
  clearTimeout(timer);
  const lines = readFileSync(proc.log, 'utf8').trimEnd().split('\n');
  const last = lines.at(-1) ?? '';
  if (proc.child.exitCode !== 0 || !last.startsWith('{')) throw new Error(`${name} failed:\n${lines.slice(-10).join('\n')}`);
  return JSON.parse(last) as T;
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] ?? Number.NaN) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** Median over rounds of a per-round value, skipping rounds where either side is missing. */
export function medianPerRound<T>(a: (T | undefined)[], b: (T | undefined)[], f: (x: T, y: T) => number): number {
  const vals: number[] = [];
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x !== undefined && y !== undefined) vals.push(f(x, y));
  }
  return median(vals);
}

export function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return '–';
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(digits);
}

export function table(head: string[], rows: string[][], alignLeft = 1): string {
  const sep = head.map((_, i) => (i < alignLeft ? '---' : '---:'));
  return [head, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
