import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';

/** More workers than this is a typo, not a machine. */
const MAX_WORKERS = 1024;

export const serve: Command = {
  name: 'serve',
  args: '--config FILE [--workers N] [--replace]',
  summary: 'run the gateway (FILE may also come from SWITCHYARD_CONFIG)',
  details: 'SIGHUP or a change of FILE reloads it; SIGTERM/SIGINT drain in-flight requests, then exit 0.\n'
    + '--workers N: gateway processes sharing the listeners (default: one per CPU this process may run on;\n'
    + 'N = 1 is a single process). Per-process limits divide by N; /metrics adds up every worker.\n'
    + '--replace: start beside a gateway already listening on the same ports (a rolling restart: once this one\n'
    + 'is ready, SIGTERM the old one); without it a port in use is an error.',
  async run(args) {
    const a = parseArgs(args, { options: ['--config', '--workers'], flags: ['--replace'] });
    if (!a.ok) return usageError(serve, a.error);
    const file = a.options.get('--config') ?? process.env.SWITCHYARD_CONFIG;
    if (!file) return usageError(serve, '--config FILE is required');
    const given = a.options.get('--workers');
    const workers = given === undefined ? availableParallelism() : Number(given);
    if (!/^\d+$/.test(given ?? '1') || workers < 1 || workers > MAX_WORKERS) {
      return usageError(serve, `--workers must be a whole number from 1 to ${MAX_WORKERS}, got ${given}`);
    }
    const replace = a.options.has('--replace');
    // Loaded on use: `--help` and `validate` need not load the gateway.
    if (cluster.isWorker) {
      // This same command line, run again by the primary's fork: one of the N.
      const { runWorker } = await import('../../cluster/worker.ts');
      await runWorker(file);
    } else if (workers > 1) {
      const { runPrimary } = await import('../../cluster/primary.ts');
      await runPrimary(file, { workers, replace });
    } else {
      const { serve: runGateway } = await import('../../serve.ts');
      await runGateway(file, { replace });
    }
    return undefined;
  },
};
