import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';

export const serve: Command = {
  name: 'serve',
  args: '--config FILE [--replace]',
  summary: 'run the gateway (FILE may also come from SWITCHYARD_CONFIG)',
  details: 'SIGHUP or a change of FILE reloads it; SIGTERM/SIGINT drain in-flight requests, then exit 0.\n'
    + '--replace: start beside a gateway already listening on the same ports (a rolling restart: once this one\n'
    + 'is ready, SIGTERM the old one); without it a port in use is an error.',
  async run(args) {
    const a = parseArgs(args, { options: ['--config'], flags: ['--replace'] });
    if (!a.ok) return usageError(serve, a.error);
    const file = a.options.get('--config') ?? process.env.SWITCHYARD_CONFIG;
    if (!file) return usageError(serve, '--config FILE is required');
    // Loaded on use: `--help` and `validate` need not load the gateway.
    const { serve: runGateway } = await import('../../serve.ts');
    await runGateway(file, { replace: a.options.has('--replace') });
    return undefined;
  },
};
