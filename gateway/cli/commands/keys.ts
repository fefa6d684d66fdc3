import { ADMIN_HELP, clientFor, failCall, outputOf, printJson } from '../admin-command.ts';
import { AdminError } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';

/**
 * `switchyard keys regenerate ENDPOINT primary|secondary`: the one command that prints a key.
 * The new key is alone on stdout, so `KEY=$(switchyard keys regenerate cars primary)` works;
 * the gateway keeps only its digest, so this is the only time anyone sees it.
 */
export const keys: Command = {
  name: 'keys',
  args: 'regenerate ENDPOINT primary|secondary [--output text|json]',
  summary: 'regenerate an endpoint key and print it (once)',
  details: 'The old key in that slot stops working at once, on every replica; the other slot keeps working, so callers\n'
    + 'can move over: regenerate secondary, move callers to it, then regenerate primary. Prints the new key alone\n'
    + '(`KEY=$(switchyard keys regenerate cars primary)`); --output json prints {endpoint, key_type, key}.\n'
    + ADMIN_HELP,
  async run(args) {
    const a = parseArgs(args, { options: ['--output'], positionals: { min: 0, max: 3 } });
    if (!a.ok) return usageError(keys, a.error);
    const output = outputOf(keys, a, ['text', 'json']);
    if (typeof output === 'number') return output;
    const [verb, endpoint, slot] = a.positionals;
    if (verb !== 'regenerate') return usageError(keys, verb === undefined ? 'regenerate is required' : `unknown subcommand ${JSON.stringify(verb)} (keys has: regenerate)`);
    if (endpoint === undefined) return usageError(keys, 'ENDPOINT is required');
    if (slot !== 'primary' && slot !== 'secondary') return usageError(keys, 'the key type must be primary or secondary');
    const client = clientFor(keys);
    if (typeof client === 'number') return client;
    try {
      const r = await client.regenerateKey<{ endpoint?: unknown; key_type?: unknown; key?: unknown }>(endpoint, slot);
      const key = r.body.key;
      // A key is visible ASCII; anything else is not a key and must not reach a terminal.
      if (typeof key !== 'string' || !/^[\x21-\x7e]+$/.test(key)) {
        throw new AdminError('bad_response', `${client.url} answered the key regeneration without a key; the key in ${endpoint}'s ${slot} slot may have changed: regenerate it again`);
      }
      if (output === 'json') printJson(r.body);
      else process.stdout.write(`${key}\n`);
      return 0;
    } catch (err) {
      return failCall(keys, client, err, endpoint);
    }
  },
};
