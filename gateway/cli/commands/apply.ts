import { ADMIN_HELP, EXIT, clientFor, explain, fail, outputOf, printJson, type DryRun } from '../admin-command.ts';
import { AdminError, printable, type AdminClient } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { diff, formatChanges, REDACTED, type Change } from '../config-diff.ts';
import { readEndpointsFile } from '../endpoints-yaml.ts';

/**
 * `switchyard apply -f FILE [--dry-run]`: every endpoint of FILE (the `endpoints:` section
 * `switchyard get` prints) is PUT: created, or replaced whole.
 *
 * It runs in two passes so that a file applies whole or not at all as far as checking goes:
 * first every endpoint is sent with `?dry_run=true` (every check runs, nothing is stored),
 * and only when all pass is each one written, with the `If-Match` of the version the check
 * saw. An endpoint whose check shows no change is not written (no version, no audit entry).
 * The writes themselves are one per endpoint: should one fail after others were written
 * (the store went down), the output says which were.
 */

/** A new key's value is never shown, nor known: the admin API redacts both sides. */
const NEW_KEY = '<new key>';

interface Planned {
  readonly name: string;
  /** The ETag the check ran against (undefined: the endpoint does not exist yet). */
  readonly etag: string | undefined;
  readonly before: unknown;
  readonly after: unknown;
  readonly changes: readonly Change[];
}

/**
 * The changes of one endpoint: the dry run's before and after, plus every key slot FILE sets
 * to a value (not "<redacted>"), which replaces that key though both sides show it redacted.
 */
export function planChanges(name: string, body: Readonly<Record<string, unknown>>, before: unknown, after: unknown): Change[] {
  const changes = diff(before ?? undefined, after ?? undefined, `endpoints.${name}`);
  const keys = body.keys && typeof body.keys === 'object' ? Object.entries(body.keys as Record<string, unknown>) : [];
  const hadKeys = (before as { keys?: Record<string, unknown> } | null | undefined)?.keys ?? {};
  for (const [slot, v] of keys) {
    const path = `endpoints.${name}.keys.${slot}`;
    if (v === REDACTED || hadKeys[slot] === undefined || changes.some((c) => c.path === path)) continue;
    changes.push({ op: '~', path, before: REDACTED, after: NEW_KEY });
  }
  return changes;
}

/** The read and the dry run of one endpoint; throws the call's error. */
async function plan(client: AdminClient, name: string, body: Readonly<Record<string, unknown>>): Promise<Planned> {
  let etag: string | undefined;
  try {
    etag = (await client.endpoint(name)).etag;
  } catch (err) {
    if (!(err instanceof AdminError && err.kind === 'not_found' && err.code === 'EndpointNotFound')) throw err;
  }
  const r = await client.editEndpoint<DryRun>('PUT', name, { body, ifMatch: etag, dryRun: true });
  const before = r.body.before ?? null;
  const after = r.body.after ?? null;
  return { name, etag, before, after, changes: planChanges(name, body, before, after) };
}

/** An error that will be the same for every endpoint (no gateway, a refused key): stop at the first. */
function stopsAll(err: unknown): boolean {
  return !(err instanceof AdminError) || (err.kind !== 'http' && err.kind !== 'not_found');
}

export const apply: Command = {
  name: 'apply',
  args: '-f FILE [--dry-run] [--output text|json]',
  summary: 'create or replace the endpoints in FILE; --dry-run: show the changes',
  details: 'FILE has an endpoints: section, as `switchyard get` prints it (other sections, such as server or state, are\n'
    + 'set in the gateway\'s config file only, and are refused). Each endpoint is created or replaced whole; keys\n'
    + `given as ${REDACTED} keep the current key, \${ENV} references are kept and resolved by the gateway. Every\n`
    + 'endpoint is checked by the gateway first (?dry_run=true); if any is refused, nothing is written and every\n'
    + 'field error is printed. --dry-run stops there and prints what would change, field by field\n'
    + '(`~ endpoints.cars.traffic.blue: 100 -> 90`, `+ endpoints.cars.deployments.green`). Without it, prints one\n'
    + 'line per endpoint: created, replaced (N changes) or unchanged (not written).\n'
    + ADMIN_HELP,
  async run(args) {
    const a = parseArgs(args, { options: ['-f', '--file', '--output'], flags: ['--dry-run'] });
    if (!a.ok) return usageError(apply, a.error);
    const output = outputOf(apply, a, ['text', 'json']);
    if (typeof output === 'number') return output;
    if (a.options.has('-f') && a.options.has('--file')) return usageError(apply, 'give -f FILE once');
    const file = a.options.get('-f') ?? a.options.get('--file');
    if (file === undefined) return usageError(apply, '-f FILE is required');
    const dryRun = a.options.has('--dry-run');
    const read = await readEndpointsFile(file);
    if (!read.ok) {
      process.stderr.write(read.problems.map((p) => `switchyard apply: ${printable(file)}: ${p}\n`).join(''));
      return EXIT.failed;
    }
    const client = clientFor(apply);
    if (typeof client === 'number') return client;

    const plans: Planned[] = [];
    let code: number = EXIT.ok;
    for (const [name, body] of read.endpoints) {
      try {
        plans.push(await plan(client, name, body));
      } catch (err) {
        code = Math.max(code, fail(apply, await explain(client, err, name)));
        if (stopsAll(err)) return code;
      }
    }
    if (code !== EXIT.ok) {
      process.stderr.write(`switchyard apply: nothing was written (${read.endpoints.length - plans.length} of ${read.endpoints.length} endpoints refused)\n`);
      return code;
    }
    if (dryRun) {
      const changes = plans.flatMap((p) => p.changes);
      if (output === 'json') printJson({ dry_run: true, changes, endpoints: plans.map(({ name, before, after }) => ({ name, before, after })) });
      else process.stdout.write(`${formatChanges(changes)}(dry run: nothing was written)\n`);
      return EXIT.ok;
    }

    const results: { name: string; result: 'created' | 'replaced' | 'unchanged'; changes: readonly Change[] }[] = [];
    const body = new Map(read.endpoints);
    for (const p of plans) {
      if (!p.changes.length) {
        results.push({ name: p.name, result: 'unchanged', changes: [] });
        continue;
      }
      try {
        const r = await client.editEndpoint('PUT', p.name, { body: body.get(p.name), ifMatch: p.etag });
        results.push({ name: p.name, result: r.status === 201 ? 'created' : 'replaced', changes: p.changes });
      } catch (err) {
        const written = results.filter((x) => x.result !== 'unchanged').map((x) => x.name);
        code = fail(apply, await explain(client, err, p.name));
        process.stderr.write(`switchyard apply: stopped at ${printable(p.name)}; ${written.length ? `written before it: ${written.map(printable).join(', ')}` : 'nothing was written'}\n`);
        return code;
      }
    }
    if (output === 'json') printJson({ applied: results });
    else {
      process.stdout.write(results.map((r) => `${printable(r.name)}: ${r.result === 'replaced' ? `replaced (${r.changes.length} change${r.changes.length === 1 ? '' : 's'})` : r.result}\n`).join(''));
    }
    return EXIT.ok;
  },
};
