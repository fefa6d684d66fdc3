/**
 * Reference point: the classic `http-proxy` module behind node:http, with a keep-alive
 * upstream agent (keepAlive, maxSockets 128) as in shared/research/proxy-baseline.md.
 *
 *   node load-tests/http-proxy-baseline.ts --port 8082 --target http://127.0.0.1:5001
 */
import { Agent, createServer } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8082' },
    host: { type: 'string', default: '127.0.0.1' },
    target: { type: 'string', default: 'http://127.0.0.1:5001' },
  },
});

const agent = new Agent({ keepAlive: true, maxSockets: 128, keepAliveMsecs: 1000 });
const proxy = httpProxy.createProxyServer({ target: values.target, agent, xfwd: false });

proxy.on('error', (_err, _req, res) => {
  const r = res as ServerResponse | Socket;
  if ('headersSent' in r && !r.headersSent) {
    r.writeHead(502, { 'content-type': 'application/json' });
    r.end('{"error":{"code":"BadGateway"}}');
  } else {
    r.destroy();
  }
});

const server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => proxy.web(req, res));
server.headersTimeout = 66_000;
server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`http-proxy on http://${values.host}:${values.port} -> ${values.target}\n`);
});

function stop(): void {
  server.close();
  server.closeAllConnections();
  agent.destroy();
  proxy.close();
  setTimeout(() => process.exit(0), 200).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
