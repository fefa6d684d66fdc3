import { ADMIN_HELP, clientFor, failCall, outputOf, printJson, type DryRun } from '../admin-command.ts';
import { printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { diff, formatChanges } from '../config-diff.ts';

/** `switchyard delete ENDPOINT [--dry-run]`: `DELETE /admin/endpoints/{name}`. */
export const del: Command = {
  name: 'delete',
  args: 'ENDPOINT [--dry-run] [--output text|json]',
  summary: 'delete an endpoint; --dry-run: check only',
  details: 'The endpoint stops serving on every replica (its callers get 404). An endpoint the config file defines stays\n'
    + 'deleted until the file changes that endpoint (then the file wins). --dry-run runs every check and prints\n'
    + '`- endpoints.NAME` without deleting. --output json prints the admin API\'s answer.\n'
    + ADMIN_HELP,
  async run(args) {
    const a = parseArgs(args, { options: ['--output'], flags: ['--dry-run'], positionals: { min: 0, max: 1 } });
    if (!a.ok) return usageError(del, a.error);
    const output = outputOf(del, a, ['text', 'json']);
    if (typeof output === 'number') return output;
    const endpoint = a.positionals[0];
    if (endpoint === undefined) return usageError(del, 'ENDPOINT is required');
    const dryRun = a.options.has('--dry-run');
    const client = clientFor(del);
    if (typeof client === 'number') return client;
    try {
      const r = await client.editEndpoint<DryRun & { doc_version?: unknown }>('DELETE', endpoint, { dryRun });
      if (output === 'json') printJson(r.body);
      else if (dryRun) process.stdout.write(`${formatChanges(diff(r.body.before ?? undefined, r.body.after ?? undefined, `endpoints.${endpoint}`))}(dry run: nothing was deleted)\n`);
      else process.stdout.write(`deleted endpoint ${printable(endpoint)}\n`);
      return 0;
    } catch (err) {
      return failCall(del, client, err, endpoint);
    }
  },
};
