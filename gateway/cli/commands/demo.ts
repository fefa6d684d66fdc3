import { flag } from '../args.ts';
import type { Command } from '../command.ts';

export const demo: Command = {
  name: 'demo',
  args: '[--config FILE]',
  summary: 'gateway + two sample model servers (what a bare `switchyard` and `npm start` run)',
  details: 'PORT (default 8080) and ADMIN_PORT (default 9090) move its listeners; SWITCHYARD_DEMO_KEY and\n'
    + 'SWITCHYARD_ADMIN_KEY choose its keys. With --config FILE it serves FILE instead (`npm start -- --config FILE`).\n'
    + 'Its temporary directory (config and state, with the keys) is removed when it exits.',
  async run(args) {
    const file = flag(args, '--config');
    if (file) {
      const { serve } = await import('../../serve.ts');
      await serve(file);
      return undefined;
    }
    const { runDemo } = await import('../../demo/demo.ts');
    await runDemo();
    return undefined;
  },
};
