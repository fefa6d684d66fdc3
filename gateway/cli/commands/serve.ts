import { flag } from '../args.ts';
import { usageLine, type Command } from '../command.ts';

export const serve: Command = {
  name: 'serve',
  args: '--config FILE',
  summary: 'run the gateway (FILE may also come from SWITCHYARD_CONFIG)',
  details: 'SIGHUP or a change of FILE reloads it; SIGTERM/SIGINT drain in-flight requests, then exit 0.',
  async run(args) {
    const file = flag(args, '--config') ?? process.env.SWITCHYARD_CONFIG;
    if (!file) {
      process.stderr.write(`switchyard serve: --config FILE is required\n${usageLine(serve)}`);
      return 2;
    }
    // Loaded on use: `--help` and `validate` need not load the gateway.
    const { serve: runGateway } = await import('../../serve.ts');
    await runGateway(file);
    return undefined;
  },
};
