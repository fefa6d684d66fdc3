/**
 * How the bench's backends (load-tests/backend.ts, load-tests/model-backend.ts) serve: a
 * keep-alive HTTP server whose idle timeout outlasts every proxy's, one line on stdout
 * once it listens, and a stop on SIGTERM/SIGINT that closes every connection.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

export function serveBackend(onRequest: (req: IncomingMessage, res: ServerResponse) => void, host: string, port: number, describe: (url: string) => string): void {
  const server = createServer({ keepAliveTimeout: 65_000 }, onRequest);
  server.headersTimeout = 66_000;
  server.listen(port, host, () => {
    const addr = server.address();
    const bound = typeof addr === 'object' && addr !== null ? addr.port : port;
    process.stdout.write(`${describe(`http://${host}:${bound}`)}\n`);
  });
  const stop = (): void => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
