import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';

export const demo: Command = {
  name: 'demo',
  args: '[--config FILE]',
  summary: 'gateway + two sample model servers (what a bare `switchyard` and `npm start` run)',
  details: 'PORT (default 8080) and ADMIN_PORT (default 9090) move its listeners; SWITCHYARD_DEMO_KEY and\n'
    + 'SWITCHYARD_ADMIN_KEY choose its keys. With --config FILE it serves FILE instead (`npm start -- --config FILE`).\n'
    + 'Its temporary directory (config and state, with the keys) is removed when it exits. It stops (draining,\n'
    + 'as on SIGTERM) when the process that started it goes away, so `npm start` killed leaves nothing behind.',
  async run(args) {
    // Taken before anything starts: a parent that is gone by the time the demo listens counts.
    const parent = process.ppid;
    const a = parseArgs(args, { options: ['--config'] });
    if (!a.ok) return usageError(demo, a.error);
    const { stopWithParent } = await import('../../demo/orphan.ts');
    const file = a.options.get('--config');
    if (file) {
      const { serve } = await import('../../serve.ts');
      await serve(file);
      stopWithParent(parent);
      return undefined;
    }
    const { runDemo } = await import('../../demo/demo.ts');
    await runDemo();
    stopWithParent(parent);
    return undefined;
  },
};
