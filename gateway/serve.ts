import { resolve } from 'node:path';
import { formatIssues, loadConfigFile } from '../config/load.ts';
import { watchConfig } from './config-watcher.ts';
import { Gateway } from './gateway.ts';

/**
 * `switchyard serve`: run a gateway until SIGTERM/SIGINT. SIGHUP or a change of the
 * config file reloads it. The first stop signal drains (in-flight requests finish, up to
 * `server.shutdown_grace_ms`) and exits 0; later signals are logged and change nothing,
 * so an impatient second Ctrl-C cannot drop requests in flight.
 */
export async function serve(configPath: string, opts: { listenHint?: string; replace?: boolean } = {}): Promise<Gateway> {
  const listenHint = opts.listenHint;
  const file = resolve(configPath);
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) {
    process.stderr.write(`switchyard: invalid config ${file}\n${formatIssues(loaded.issues)}\n`);
    process.exit(2);
  }
  const config = loaded.config;
  let gw: Gateway;
  try {
    gw = await Gateway.start({ config, configPath: file, warnings: loaded.warnings, replace: opts.replace ?? false });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      const hint = listenHint ?? (e.code === 'EADDRINUSE'
        ? 'another process listens there; for a rolling restart of a gateway start the new one with --replace, otherwise check server.listen, server.private_listen and server.admin_listen'
        : 'check server.listen, server.private_listen and server.admin_listen');
      process.stderr.write(`switchyard: cannot listen on ${e.address ?? '?'}:${e.port ?? '?'} (${e.code}); ${hint}\n`);
      process.exit(1);
    }
    // A state file that cannot be read (or is corrupt) stops the start: serving without it
    // could bring back keys that were revoked.
    process.stderr.write(`switchyard: cannot start: ${e.message}\n`);
    process.exit(1);
  }
  const a = gw.addresses;
  gw.log.info({
    public: `${a.public.address}:${a.public.port}`,
    private: a.private ? `${a.private.address}:${a.private.port}` : undefined,
    admin: `${a.admin.address}:${a.admin.port}`,
    config_version: gw.store.current.version,
  }, 'switchyard listening');

  const stopWatching = watchConfig(file, () => void gw.reload());
  process.on('SIGHUP', () => void gw.reload());
  let repeated = false;
  const stop = (signal: string): void => {
    if (gw.draining) {
      // Ctrl-C under npm reaches the process twice (terminal and npm): say it once.
      if (!repeated) gw.log.warn({ signal }, 'already draining; in-flight requests keep their grace period');
      repeated = true;
      return;
    }
    stopWatching();
    gw.log.info({ signal }, 'stopping');
    void gw.shutdown().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return gw;
}
