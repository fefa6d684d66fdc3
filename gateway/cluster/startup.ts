import type { GatewayConfig } from '../../config/schema.ts';
import { formatIssues, loadConfigFile } from '../../config/load.ts';

/**
 * What a start that cannot go on does, shared by `serve` (one process) and the cluster
 * primary: kept apart from the gateway so the primary, which serves nothing, starts
 * without loading it.
 */

/** Say why and exit with `code` (2: invalid config, 1: anything else). */
export type Fail = (message: string, code: number) => never;

export const failHere: Fail = (message, code) => {
  process.stderr.write(`${message}\n`);
  process.exit(code);
};

/** Why a listener could not bind, as one line for the operator (undefined: not a listen error). */
export function cannotListen(err: unknown, hint?: string): string | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (e.code !== 'EADDRINUSE' && e.code !== 'EACCES' && e.code !== 'EADDRNOTAVAIL') return undefined;
  const why = hint ?? (e.code === 'EADDRINUSE'
    ? 'another process listens there; for a rolling restart of a gateway start the new one with --replace, otherwise check server.listen, server.private_listen and server.admin_listen'
    : 'check server.listen, server.private_listen and server.admin_listen');
  return `switchyard: cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code}); ${why}`;
}

/** Load and validate the config file; invalid: `fail` with exit code 2. */
export async function loadOrFail(file: string, fail: Fail = failHere): Promise<{
  readonly config: GatewayConfig;
  readonly raw: Readonly<Record<string, unknown>>;
  readonly warnings: readonly string[];
}> {
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) fail(`switchyard: invalid config ${file}\n${formatIssues(loaded.issues)}`, 2);
  return { config: loaded.config, raw: loaded.raw, warnings: loaded.warnings };
}
