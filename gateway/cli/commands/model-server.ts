import { flag } from '../args.ts';
import type { Command } from '../command.ts';

export const modelServer: Command = {
  name: 'model-server',
  args: '[--name N] [--port P] [--host H] [--latency-ms MS]',
  summary: 'a sample model server',
  details: 'GET / (liveness), POST /score, /stream (SSE: ?n=5&interval_ms=200), /echo.\n'
    + 'Defaults: --name model --port 5001 --host 127.0.0.1 --latency-ms 0.',
  async run(args) {
    const { startModelServer } = await import('../../demo/model-server.ts');
    const s = await startModelServer({
      name: flag(args, '--name') ?? 'model',
      port: Number(flag(args, '--port') ?? 5001),
      host: flag(args, '--host') ?? '127.0.0.1',
      latencyMs: Number(flag(args, '--latency-ms') ?? 0),
    });
    process.stdout.write(`model server ${s.name} on ${s.url}\n`);
    const stop = (): void => void s.close().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return undefined;
  },
};
