import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { serve } from '../serve.ts';
import { startModelServer } from './model-server.ts';

/**
 * `npm start`: two sample model servers (deployments blue and green of endpoint `demo`)
 * and the gateway in front, with in-process state. The config is written to a temp file
 * and served from there, so editing it (or SIGHUP) reloads live, like the real thing.
 * That directory holds the keys in plain text (and the state file next to the config): it
 * is removed when the process exits, whichever way (drain after SIGTERM/SIGINT, a failed
 * start, a normal exit). Only SIGKILL leaves it behind.
 */
export async function runDemo(): Promise<void> {
  const blue = await startModelServer({ name: 'blue' });
  const green = await startModelServer({ name: 'green' });
  const key = process.env.SWITCHYARD_DEMO_KEY ?? randomBytes(18).toString('base64url');
  const port = Number(process.env.PORT ?? 8080);
  const adminPort = Number(process.env.ADMIN_PORT ?? 9090);
  const adminKey = process.env.SWITCHYARD_ADMIN_KEY ?? randomBytes(18).toString('base64url');
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-demo-'));
  // 'exit' handlers must be synchronous; serve() ends every path with process.exit().
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'demo.yaml');
  // Written with the yaml library, never by pasting values into YAML text: a key from
  // SWITCHYARD_DEMO_KEY such as `a"b` or `x", other: "y` must stay one string. And `$` is the
  // config's variable sign (`${VAR}`; `$$` is a literal `$`): a key holding one stays itself.
  const literal = (s: string): string => s.replaceAll('$', '$$$$');
  const config = {
    server: {
      listen: { host: '127.0.0.1', port },
      admin_listen: { host: '127.0.0.1', port: adminPort },
      shutdown_grace_ms: 5000,
    },
    admin: { keys: [literal(adminKey)] },
    endpoints: {
      demo: {
        auth_mode: 'key',
        keys: { primary: literal(key) },
        traffic: { blue: 90, green: 10 },
        deployments: {
          blue: { instances: [blue.url], scoring_route: '/score' },
          green: { instances: [green.url], scoring_route: '/score' },
        },
      },
    },
  };
  writeFileSync(file, `# Switchyard demo config: edit and save to reload live.\n${stringify(config)}`, { mode: 0o600 });
  const gw = await serve(file, { listenHint: 'the demo uses PORT (default 8080) and ADMIN_PORT (default 9090): set them to free ports' });
  const base = `http://127.0.0.1:${gw.addresses.public.port}`;
  const admin = `http://127.0.0.1:${gw.addresses.admin.port}`;
  process.stdout.write(`
Switchyard demo is running.

  invocation URL  ${base}/endpoints/demo/score
  demo key        ${key}
  admin API       ${admin}  (admin key ${adminKey})
  config file     ${file}  (edit and save to reload)

Try:
  curl -s ${base}/endpoints/demo/score -H "Authorization: Bearer ${key}" -H "Content-Type: application/json" -d '{"data":[[1,2,3],[4,5,6]]}'
  curl -sN ${base}/endpoints/demo/stream -H "Authorization: Bearer ${key}"
  curl -s ${base}/endpoints/demo/score -H "Authorization: Bearer ${key}" -H "azureml-model-deployment: green" -d '{}'
  curl -s ${admin}/metrics | grep switchyard_requests_total
  SWITCHYARD_ADMIN_URL=${admin} SWITCHYARD_ADMIN_KEY=${adminKey} npx switchyard status demo

Rotate a key (a new secondary key, shown once; the demo key keeps working):
  curl -s -X POST ${admin}/admin/endpoints/demo/keys/regenerate -H "Authorization: Bearer ${adminKey}" -H "Content-Type: application/json" -d '{"key_type":"secondary"}'

Ctrl-C stops (in-flight requests finish first) and removes the config directory.
`);
  const stopModels = (): void => {
    void blue.close();
    void green.close();
  };
  process.once('exit', stopModels);
}
