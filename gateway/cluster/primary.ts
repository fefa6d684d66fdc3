import cluster, { type Worker } from 'node:cluster';
import { resolve } from 'node:path';
import type { GatewayConfig } from '../../config/schema.ts';
import { portInUse } from '../listeners.ts';
import { FileBackend, stateFilePath } from '../live-config/file-backend.ts';
import { createLogger, SharedLogDestination, type Logger } from '../logger.ts';
import { ClusterMetrics } from './cluster-metrics.ts';
import { LiveOwner, type Peer } from './ipc-backend.ts';
import { isOurs, WORKERS_ENV, type Call, type StopSignal, type WorkerMessage } from './messages.ts';
import { cannotListen, loadOrFail } from './startup.ts';

/** A worker's first restart waits this long; each quick death after doubles it, up to {@link RESTART_MAX_MS}. */
export const RESTART_BASE_MS = 200;
export const RESTART_MAX_MS = 30_000;
/** A worker that ran this long before dying restarts after {@link RESTART_BASE_MS} again. */
export const RESTART_RESET_MS = 60_000;
/** Past `shutdown_grace_ms`, how long the primary waits for workers to exit before it kills them. */
const STOP_MARGIN_MS = 10_000;

/** One of the N places a worker runs in, across its restarts. */
interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  startedAt: number;
  /** Quick deaths in a row (the backoff's exponent). */
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
}

/**
 * `serve --workers N` (N > 1), the primary: it serves nothing itself. It checks the config
 * and the ports once, forks N workers (each a whole gateway; see worker.ts), restarts one
 * that dies (with a backoff), passes signals on, answers `/metrics` with every worker's
 * metrics merged, and without Redis owns the state file: workers' API edits are written
 * here, one at a time, and sent to every other worker.
 */
export async function runPrimary(configPath: string, opts: { workers: number; replace: boolean }): Promise<void> {
  const file = resolve(configPath);
  const { config } = await loadOrFail(file);
  // The workers write to the same stdout: whole lines, at most PIPE_BUF bytes a write (see SharedLogDestination).
  const log = createLogger(config.logging.level, new SharedLogDestination()).child({ worker: 'primary', pid: process.pid });
  await checkPorts(config, opts, log);
  new Primary(file, config, opts.workers, log).start();
}

/**
 * With reusePort a second gateway would join the ports silently; each worker binds beside
 * its siblings, so the check a single process makes at bind time is made here, once.
 */
async function checkPorts(config: GatewayConfig, opts: { workers: number; replace: boolean }, log: Logger): Promise<void> {
  const s = config.server;
  const specs = [s.admin_listen, s.listen, ...(s.private_listen ? [s.private_listen] : [])];
  if (specs.some((l) => l.port === 0)) {
    log.warn({ workers: opts.workers }, 'a listener on port 0 with several workers: each worker gets a port of its own');
  }
  if (opts.replace) return;
  for (const at of specs) {
    if (await portInUse(at)) {
      process.stderr.write(`${cannotListen(Object.assign(new Error('in use'), { code: 'EADDRINUSE', address: at.host, port: at.port }))}\n`);
      process.exit(1);
    }
  }
}

class Primary {
  readonly #file: string;
  readonly #config: GatewayConfig;
  readonly #log: Logger;
  readonly #slots: Slot[];
  readonly #ready = new Set<Worker>();
  /** Workers that were starting when a SIGHUP came. */
  readonly #reloadWhenReady = new Set<Worker>();
  readonly #metrics: ClusterMetrics;
  /** The state file's owner (no Redis); made while the workers boot: see {@link #owner}. */
  #live: Promise<LiveOwner> | undefined;
  /** Every slot's worker has been ready once: from then on a death restarts, before it a death ends the start. */
  #started = false;
  #stopping = false;
  #exitCode = 0;
  #exiting = false;

  constructor(file: string, config: GatewayConfig, workers: number, log: Logger) {
    this.#file = file;
    this.#config = config;
    this.#log = log;
    this.#slots = Array.from({ length: workers }, (_, index) => ({ index, worker: undefined, startedAt: 0, failures: 0, restartTimer: undefined }));
    this.#metrics = new ClusterMetrics(() => [...this.#ready].map(peer));
  }

  /** The one writer of the state file (at the gateway's own path, stateFilePath). */
  async #owner(): Promise<LiveOwner> {
    return new LiveOwner(new FileBackend(stateFilePath(this.#config, this.#file)), () => [...this.#ready].map(peer), this.#log);
  }

  start(): void {
    // Workers write their log to the stdout they inherit, each write whole lines of at most
    // PIPE_BUF bytes (SharedLogDestination), so lines of two processes never mix. Relaying
    // them through here cost this process ~11 µs of CPU per access line.
    cluster.setupPrimary({ stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    cluster.on('message', (worker, m: unknown) => {
      if (isOurs<WorkerMessage>(m)) this.#receive(worker, m);
    });
    cluster.on('exit', (worker, code, signal) => this.#exited(worker, code, signal));
    for (const s of this.#slots) this.#fork(s);
    // With Redis every worker uses it directly, like any replica.
    if (!this.#config.state?.redis_url) this.#live = this.#owner();
    process.on('SIGTERM', () => this.#stop('SIGTERM'));
    process.on('SIGINT', () => this.#stop('SIGINT'));
    process.on('SIGHUP', () => {
      for (const s of this.#slots) {
        if (!s.worker) continue;
        // A worker still starting may have read the file already: it reloads once ready.
        if (this.#ready.has(s.worker)) peer(s.worker).send({ type: 'switchyard:signal', signal: 'SIGHUP' });
        else this.#reloadWhenReady.add(s.worker);
      }
    });
    this.#log.info({ workers: this.#slots.length, config: this.#file, live_store: this.#config.state?.redis_url ? 'redis' : 'state file' }, 'starting workers');
  }

  #fork(s: Slot): void {
    s.restartTimer = undefined;
    const w = cluster.fork({ [WORKERS_ENV]: String(this.#slots.length) });
    s.worker = w;
    s.startedAt = Date.now();
  }

  #receive(w: Worker, m: WorkerMessage): void {
    switch (m.type) {
      case 'switchyard:ready':
        this.#ready.add(w);
        this.#metrics.running.set(this.#ready.size);
        if (this.#reloadWhenReady.delete(w) && !this.#stopping) peer(w).send({ type: 'switchyard:signal', signal: 'SIGHUP' });
        if (this.#stopping) peer(w).send({ type: 'switchyard:signal', signal: 'SIGTERM' });
        else if (!this.#started && this.#ready.size === this.#slots.length) {
          this.#started = true;
          this.#log.info({ workers: this.#ready.size, worker_pids: [...this.#ready].map((x) => x.process.pid) }, 'switchyard workers ready');
        }
        return;
      case 'switchyard:fatal':
        this.#fatal(w, m.message, m.code);
        return;
      case 'switchyard:metrics-json':
        this.#metrics.answered(w.id, m.id, m.metrics, m.error);
        return;
      case 'switchyard:call':
        this.#answer(w, m.call).then(
          (value) => peer(w).send({ type: 'switchyard:reply', id: m.id, ok: true, value }),
          (err: Error) => peer(w).send({ type: 'switchyard:reply', id: m.id, ok: false, error: err.message }),
        );
    }
  }

  #answer(w: Worker, call: Call): Promise<unknown> {
    switch (call.op) {
      case 'metrics':
        return this.#metrics.aggregate();
      case 'live-load':
        return this.#live ? this.#live.then((o) => o.load()) : Promise.reject(new Error('the live document is in Redis (state.redis_url)'));
      case 'live-write':
        return this.#live ? this.#live.then((o) => o.write(w.id, call.expected, call.doc)) : Promise.reject(new Error('the live document is in Redis (state.redis_url)'));
    }
  }

  /** A worker cannot start: before every worker ever started this ends the start (said once), later it is logged and retried. */
  #fatal(w: Worker, message: string, code: number): void {
    if (this.#started || this.#stopping) {
      this.#log.error({ worker_id: w.id, worker_pid: w.process.pid, code, reason: message.replace(/^switchyard: /, '') }, 'worker cannot start');
      return;
    }
    process.stderr.write(`${message}\n`);
    this.#exitCode = code;
    this.#stopping = true;
    this.#signalAll('SIGTERM');
  }

  #exited(w: Worker, code: number | null, signal: string | null): void {
    this.#ready.delete(w);
    this.#reloadWhenReady.delete(w);
    this.#metrics.running.set(this.#ready.size);
    this.#metrics.gone(w.id);
    const s = this.#slots.find((x) => x.worker === w);
    if (s) s.worker = undefined;
    if (this.#stopping) {
      // Killed by the signal passed on while it was starting is a stop too.
      if (code !== null && code !== 0 && this.#exitCode === 0) this.#exitCode = 1;
      if (this.#slots.every((x) => !x.worker)) void this.#exit();
      return;
    }
    if (!this.#started) {
      // Died while starting without saying why (a crash): the start fails.
      process.stderr.write(`switchyard: a worker exited while starting (${signal ?? `exit code ${code}`})\n`);
      this.#exitCode = code || 1;
      this.#stopping = true;
      this.#signalAll('SIGTERM');
      if (this.#slots.every((x) => !x.worker)) void this.#exit();
      return;
    }
    if (!s) return;
    const ranMs = Date.now() - s.startedAt;
    if (ranMs >= RESTART_RESET_MS) s.failures = 0;
    const delay = Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** s.failures);
    s.failures++;
    this.#metrics.restarts.inc();
    this.#log.warn({ worker_id: w.id, worker_pid: w.process.pid, code, signal, ran_ms: ranMs, restart_in_ms: delay }, 'worker exited; restarting it');
    s.restartTimer = setTimeout(() => this.#fork(s), delay);
  }

  #stop(signal: StopSignal): void {
    if (this.#stopping) {
      this.#log.warn({ signal }, 'already draining; in-flight requests keep their grace period');
      return;
    }
    this.#stopping = true;
    this.#log.info({ signal, workers: this.#ready.size }, 'stopping: every worker drains');
    this.#signalAll(signal);
    if (this.#slots.every((x) => !x.worker)) void this.#exit();
  }

  /** Ready workers are told over IPC (their own drain); a worker still starting gets the signal itself. */
  #signalAll(signal: StopSignal): void {
    for (const s of this.#slots) {
      if (s.restartTimer) clearTimeout(s.restartTimer);
      s.restartTimer = undefined;
      const w = s.worker;
      if (!w) continue;
      if (this.#ready.has(w)) peer(w).send({ type: 'switchyard:signal', signal });
      else w.process.kill(signal);
    }
    const limit = this.#config.server.shutdown_grace_ms + STOP_MARGIN_MS;
    setTimeout(() => {
      const left = this.#slots.flatMap((s) => (s.worker ? [s.worker] : []));
      if (left.length === 0) return;
      this.#log.error({ worker_pids: left.map((w) => w.process.pid), after_ms: limit }, 'workers still running after the grace period; killing them');
      for (const w of left) w.process.kill('SIGKILL');
      this.#exitCode ||= 1;
    }, limit).unref();
  }

  async #exit(): Promise<void> {
    if (this.#exiting) return;
    this.#exiting = true;
    // A write under way when its worker went still lands whole (no temp file left behind).
    await this.#live?.then((o) => o.close()).catch(() => {});
    this.#log.info({ code: this.#exitCode }, 'every worker has exited');
    this.#log.flush?.();
    process.exit(this.#exitCode);
  }
}

function peer(w: Worker): Peer {
  return {
    id: w.id,
    send: (m) => {
      if (!w.isConnected()) return;
      try {
        w.send(m);
      } catch {
        // The worker is going away: what it misses no longer matters to it.
      }
    },
  };
}
