import { formatIssues, loadConfigFile } from '../config/load.ts';
import { serve } from './serve.ts';

const USAGE = `usage:
  switchyard serve --config FILE     run the gateway
  switchyard validate FILE           check a config file (exit 0, or one line per problem)
  switchyard demo                    the demo: gateway + two sample model servers
  switchyard model-server [--name N] [--port P]   a sample model server
`;

function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

/** The `switchyard` command. Returns the exit code for commands that finish. */
export async function main(argv: readonly string[]): Promise<number | undefined> {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'validate': {
      const file = args.find((a) => !a.startsWith('-'));
      if (!file) {
        process.stderr.write(USAGE);
        return 2;
      }
      const r = await loadConfigFile(file);
      if (r.ok) {
        process.stdout.write(`${file}: ok (${Object.keys(r.config.endpoints).length} endpoints)\n`);
        return 0;
      }
      process.stderr.write(`${formatIssues(r.issues)}\n`);
      return 1;
    }
    case 'serve': {
      const file = flag(args, '--config') ?? process.env.SWITCHYARD_CONFIG;
      if (!file) {
        process.stderr.write(`switchyard serve: --config FILE is required\n${USAGE}`);
        return 2;
      }
      await serve(file);
      return undefined;
    }
    case 'demo':
    case undefined: {
      const { runDemo } = await import('./demo/demo.ts');
      const file = flag(args, '--config');
      if (file) {
        await serve(file);
        return undefined;
      }
      await runDemo();
      return undefined;
    }
    case 'model-server': {
      if (args.includes('--help') || args.includes('-h')) {
        process.stdout.write('usage: switchyard model-server [--name N] [--port P] [--host H] [--latency-ms MS]\n'
          + '  a sample model server: GET / (liveness), POST /score, /stream (SSE: ?n=5&interval_ms=200), /echo\n');
        return 0;
      }
      const { startModelServer } = await import('./demo/model-server.ts');
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
    }
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default:
      process.stderr.write(`switchyard: unknown command ${cmd}\n${USAGE}`);
      return 2;
  }
}
