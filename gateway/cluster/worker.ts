import cluster from 'node:cluster';
import type { Registry } from 'prom-client';
import { stateFilePath } from '../live-config/file-backend.ts';
import { serving } from '../serve.ts';
import type { Fail } from './startup.ts';
import { PrimaryChannel } from './channel.ts';
import { workerMetrics } from './cluster-metrics.ts';
import { IpcLiveBackend } from './ipc-backend.ts';
import { WORKERS_ENV } from './messages.ts';

/** Thrown by a worker's {@link Fail}: the primary was told, the exit is under way. */
class WorkerFailed extends Error {}

/**
 * One worker of `serve --workers N`: the same gateway as a single process (it loads the
 * file itself, watches it, drains on SIGTERM), with four differences. Per-process limits
 * divide by N. Its listeners bind beside its siblings' (reusePort: the kernel spreads
 * connections; the primary checked the ports were free). `/metrics` answers every worker's
 * metrics aggregated by the primary. And without Redis, API edits go to the primary, the
 * one owner of the state file.
 */
export async function runWorker(configPath: string): Promise<void> {
  const workers = Number(process.env[WORKERS_ENV]);
  const channel = new PrimaryChannel();
  // Said once by the primary (N workers failing alike would say it N times), then exit.
  const fail: Fail = (message, code) => {
    if (!channel.send({ type: 'switchyard:fatal', message, code })) process.stderr.write(`${message}\n`);
    process.exitCode = code;
    // Give the message time to leave before the channel goes with the process.
    setTimeout(() => process.exit(code), 50);
    throw new WorkerFailed(message);
  };
  // Known once the gateway runs; the primary asks only ready workers for it.
  const started: { registry?: Registry } = {};
  const metricsText = workerMetrics(channel, () => started.registry);
  let s: Awaited<ReturnType<typeof serving>>;
  try {
    s = await serving(configPath, {
      workers: Number.isInteger(workers) && workers > 0 ? workers : 1,
      // Siblings (and, on a rolling restart, the old gateway) listen there already: the primary checked.
      replace: true,
      // With Redis every worker reads and writes it like any replica.
      liveBackend: (config, file) => (config.state?.redis_url ? undefined : new IpcLiveBackend(channel, `state file ${stateFilePath(config, file)}`)),
      metricsText,
      logBindings: { worker: cluster.worker?.id, pid: process.pid },
      fail,
    });
  } catch (err) {
    if (err instanceof WorkerFailed) return;
    try {
      fail(`switchyard: cannot start: ${(err as Error).message}`, 1);
    } catch {
      return;
    }
  }
  started.registry = s.gw.metrics.registry;
  channel.on('switchyard:signal', (m) => {
    if (m.signal === 'SIGHUP') s.reload();
    // Quiet: Ctrl-C in a terminal reaches the workers too, and the primary passes it on.
    else s.stop(m.signal, true);
  });
  channel.send({ type: 'switchyard:ready' });
}
