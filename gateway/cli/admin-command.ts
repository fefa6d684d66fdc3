import { ADMIN_KEY_ENV, ADMIN_URL_ENV, AdminClient, AdminError, DEFAULT_ADMIN_URL, printable } from './admin-client.ts';
import type { ParsedArgs } from './args.ts';
import { usageError, type Command } from './command.ts';

/**
 * What every command over the admin API shares: the client from the environment, the
 * `--output` option, and how a failure is told (one line on stderr, then a refused edit's
 * field errors, one per line) and exited.
 */

/**
 * Exit codes: 0 done; 1 the gateway refused or could not be reached (nothing changed);
 * 2 a usage error, or SWITCHYARD_ADMIN_URL/KEY unusable (nothing sent); 3 the endpoint
 * changed since it was read (412): nothing changed, running the command again is safe.
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, conflict: 3 } as const;

/** The help text's paragraph on the environment and the exit codes. */
export const ADMIN_HELP = `Reads ${ADMIN_URL_ENV} (default ${DEFAULT_ADMIN_URL}) with ${ADMIN_KEY_ENV} (an admin key or an Entra token).\n`
  + 'Exit 0; 1 when the gateway refuses (with every field error of an invalid edit) or cannot be reached;\n'
  + '2 on a usage error; 3 when the endpoint changed since it was read (412: nothing changed, run it again).';

/** The client, or the exit code after saying why there is none (a bad URL or key: nothing is sent). */
export function clientFor(cmd: Command): AdminClient | number {
  try {
    return AdminClient.fromEnv();
  } catch (err) {
    return fail(cmd, err);
  }
}

/** `--output` among `allowed` (the first is the default), or the exit code of a usage error. */
export function outputOf<T extends string>(cmd: Command, a: Extract<ParsedArgs, { ok: true }>, allowed: readonly [T, ...T[]]): T | number {
  const o = a.options.get('--output') ?? allowed[0];
  return (allowed as readonly string[]).includes(o) ? (o as T) : usageError(cmd, `--output must be ${allowed.join(' or ')}`);
}

/**
 * A clearer error for what commands run into: an unknown endpoint (named, with the ones
 * there are), an admin URL that is an invocation listener, a stale ETag (412).
 */
export async function explain(client: AdminClient, err: unknown, endpoint: string | undefined): Promise<unknown> {
  if (!(err instanceof AdminError)) return err;
  if (err.status === 412) {
    return new AdminError('http',
      `endpoint ${endpoint ?? '?'} was changed by someone else since it was read (412 PreconditionFailed); nothing changed: run the command again`,
      412, err.code);
  }
  if (err.kind !== 'not_found' || err.code !== 'EndpointNotFound') return err;
  // An invocation listener answers any /admin path with EndpointNotFound, unauthenticated;
  // the admin listener always has the list, so reading it tells the two apart.
  const wrongListener = new AdminError('not_found',
    `${client.url} answers like an invocation listener, not the admin listener: set ${ADMIN_URL_ENV} to the gateway's server.admin_listen (default ${DEFAULT_ADMIN_URL})`, 404);
  if (endpoint === undefined) return wrongListener;
  let names: string[];
  try {
    const list = await client.endpoints<{ endpoints?: { name?: unknown }[] }>();
    names = (list.body.endpoints ?? []).map((v) => String(v.name ?? ''));
  } catch (e) {
    return e instanceof AdminError && e.kind === 'not_found' && e.code === 'EndpointNotFound' ? wrongListener : err;
  }
  return new AdminError('not_found',
    `no endpoint named ${JSON.stringify(endpoint)} on the gateway at ${client.url} (it has: ${names.length ? names.join(', ') : 'none'})`, 404, err.code);
}

/** The failure on stderr: one line, then each field error of a refused edit; returns the exit code. */
export function fail(cmd: Command, err: unknown): number {
  const message = err instanceof Error ? err.message : String(err);
  const details = err instanceof AdminError ? err.details : [];
  process.stderr.write(`switchyard ${cmd.name}: ${printable(message)}\n${details.map((d) => `  ${d.path}: ${d.message}\n`).join('')}`);
  if (!(err instanceof AdminError)) return EXIT.failed;
  if (err.kind === 'config') return EXIT.usage;
  return err.status === 412 ? EXIT.conflict : EXIT.failed;
}

/** `fail` after `explain`: the usual ending of a command whose call failed. */
export async function failCall(cmd: Command, client: AdminClient, err: unknown, endpoint: string | undefined): Promise<number> {
  return fail(cmd, await explain(client, err, endpoint));
}

/** A JSON document on stdout (`--output json`). */
export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
}

/** An endpoint as the admin API shows it (read defensively: the gateway may be another version). */
export interface AdminView {
  readonly name?: string;
  readonly etag?: string;
  readonly source?: string;
  readonly config?: Readonly<Record<string, unknown>> & {
    readonly deployments?: Readonly<Record<string, unknown>>;
    readonly traffic?: Readonly<Record<string, number>>;
    readonly mirror_traffic?: Readonly<Record<string, number>>;
  };
}

/** The answer of a write with `?dry_run=true`: the endpoint's config before and after (null: none). */
export interface DryRun {
  readonly dry_run?: boolean;
  readonly name?: string;
  readonly before?: Readonly<Record<string, unknown>> | null;
  readonly after?: Readonly<Record<string, unknown>> | null;
}
