import { ADMIN_HELP, clientFor, failCall, outputOf, printJson, type AdminView } from '../admin-command.ts';
import { printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { REDACTED } from '../config-diff.ts';
import { endpointsYaml } from '../endpoints-yaml.ts';

/**
 * `switchyard get [ENDPOINT]`: the endpoint's config as the gateway runs it, printed as the
 * `endpoints:` section of a config file, so `get > cars.yaml`, an edit and `apply -f cars.yaml`
 * round-trip (keys print as "<redacted>", which `apply` reads as "keep the current key").
 */
export const get: Command = {
  name: 'get',
  args: '[ENDPOINT] [--output yaml|json]',
  summary: 'an endpoint\'s config (or every one\'s) as YAML for `apply -f`',
  details: 'Prints `endpoints:` with each endpoint\'s config as the gateway runs it: defaults filled in, keys shown as\n'
    + `${REDACTED} (apply keeps the current key for them). Edit it and \`switchyard apply -f FILE\` to change the\n`
    + 'endpoint; `apply -f FILE --dry-run` shows what would change first. --output json prints the admin API\'s\n'
    + 'view instead (config, source, etag and every instance\'s live state).\n'
    + ADMIN_HELP,
  async run(args) {
    const a = parseArgs(args, { options: ['--output'], positionals: { min: 0, max: 1 } });
    if (!a.ok) return usageError(get, a.error);
    const output = outputOf(get, a, ['yaml', 'json']);
    if (typeof output === 'number') return output;
    const endpoint = a.positionals[0];
    const client = clientFor(get);
    if (typeof client === 'number') return client;
    let views: readonly AdminView[];
    try {
      if (endpoint === undefined) {
        const r = await client.endpoints<{ endpoints?: AdminView[] }>();
        if (output === 'json') {
          printJson(r.body);
          return 0;
        }
        views = r.body.endpoints ?? [];
      } else {
        const r = await client.endpoint<AdminView>(endpoint);
        if (output === 'json') {
          printJson(r.body);
          return 0;
        }
        views = [r.body];
      }
    } catch (err) {
      return failCall(get, client, err, endpoint);
    }
    const configs = Object.fromEntries(views.map((v) => [printable(String(v.name ?? '')), v.config ?? {}]));
    const from = views.length === 1 && views[0]?.source ? ` (source: ${printable(views[0].source)})` : '';
    process.stdout.write(endpointsYaml(configs, [
      `switchyard get${endpoint === undefined ? '' : ` ${printable(endpoint)}`} from ${client.url}${from}`,
      `keys show as ${REDACTED}: \`switchyard apply -f\` keeps the current key for them`,
    ]));
    return 0;
  },
};
