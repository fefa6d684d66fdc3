import { parseArgs, portNumber } from '../args.ts';
import { usageError, type Command } from '../command.ts';

export const modelServer: Command = {
  name: 'model-server',
  args: '[--name N] [--port P] [--host H] [--latency-ms MS]',
  summary: 'a sample model server',
  details: 'GET / (liveness), POST /score, /stream (SSE: ?n=5&interval_ms=200), /echo.\n'
    + 'Defaults: --name model --port 5001 --host 127.0.0.1 --latency-ms 0.',
  async run(args) {
    const a = parseArgs(args, { options: ['--name', '--port', '--host', '--latency-ms'] });
    if (!a.ok) return usageError(modelServer, a.error);
    const port = portNumber(a.options.get('--port') ?? '5001');
    if (port === undefined) return usageError(modelServer, '--port must be a number from 0 to 65535');
    const latencyText = a.options.get('--latency-ms') ?? '0';
    const latencyMs = /^\d{1,7}$/.test(latencyText) ? Number(latencyText) : undefined;
    if (latencyMs === undefined) return usageError(modelServer, '--latency-ms must be a whole number of milliseconds');
    const host = a.options.get('--host') ?? '127.0.0.1';
    const { startModelServer } = await import('../../demo/model-server.ts');
    let s;
    try {
      s = await startModelServer({ name: a.options.get('--name') ?? 'model', port, host, latencyMs });
    } catch (err) {
      // One line, not a stack trace: the port is taken, or the host is not this machine's.
      const e = err as NodeJS.ErrnoException;
      process.stderr.write(`switchyard model-server: cannot listen on ${host}:${port} (${e.code ?? e.message})\n`);
      return 1;
    }
    process.stdout.write(`model server ${s.name} on ${s.url}\n`);
    const stop = (): void => void s.close().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return undefined;
  },
};
