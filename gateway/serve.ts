import { resolve } from 'node:path';
import type { GatewayConfig } from '../config/schema.ts';
import { cannotListen, failHere, loadOrFail, type Fail } from './cluster/startup.ts';
import { watchConfig } from './config-watcher.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';
import type { LiveBackend } from './live-config/backend.ts';
import { createAccessLogger, createLogger, logDestination } from './logger.ts';

export interface ServeOptions {
  /** Said after "cannot listen on ...": how to pick other ports (the demo's variables). */
  readonly listenHint?: string;
  readonly replace?: boolean;
  /** Processes sharing this machine's ports (a cluster worker: N; per-process limits divide by it). */
  readonly workers?: number;
  /** Where API edits are kept, decided once the config is known (undefined: the gateway's default). */
  readonly liveBackend?: (config: GatewayConfig, file: string) => LiveBackend | undefined;
  readonly metricsText?: GatewayOptions['metricsText'];
  /** Fields every log line of this process carries (a worker's id and pid). */
  readonly logBindings?: Readonly<Record<string, unknown>>;
  /** Default: stderr and exit; a cluster worker tells its primary instead, which says it once. */
  readonly fail?: Fail;
}

/** A gateway being served, with what its signals do. */
export interface Serving {
  readonly gw: Gateway;
  /** Drain and exit 0; later calls change nothing (`quiet`: say nothing of them either). */
  stop(signal: string, quiet?: boolean): void;
  reload(): void;
}

/**
 * `switchyard serve`: run a gateway until SIGTERM/SIGINT. SIGHUP or a change of the
 * config file reloads it. The first stop signal drains (in-flight requests finish, up to
 * `server.shutdown_grace_ms`) and exits 0; later signals are logged and change nothing,
 * so an impatient second Ctrl-C cannot drop requests in flight.
 */
export async function serve(configPath: string, opts: ServeOptions = {}): Promise<Gateway> {
  return (await serving(configPath, opts)).gw;
}

/** {@link serve}, handing back the stop and reload a cluster worker also runs on its primary's word. */
export async function serving(configPath: string, opts: ServeOptions = {}): Promise<Serving> {
  const fail: Fail = opts.fail ?? failHere;
  const file = resolve(configPath);
  const { config, raw, warnings } = await loadOrFail(file, fail);
  let logs: Pick<GatewayOptions, 'log' | 'accessLog'> = {};
  if (opts.logBindings) {
    // The gateway's own loggers, plus the fields that tell this process's lines apart.
    const dest = logDestination();
    logs = { log: createLogger(config.logging.level, dest).child(opts.logBindings), accessLog: createAccessLogger(dest).child(opts.logBindings) };
  }
  let gw: Gateway;
  try {
    gw = await Gateway.start({
      config, raw, configPath: file, warnings, replace: opts.replace ?? false, workers: opts.workers,
      liveBackend: opts.liveBackend?.(config, file), metricsText: opts.metricsText, ...logs,
    });
  } catch (err) {
    const listen = cannotListen(err, opts.listenHint);
    if (listen) fail(listen, 1);
    // A state file that cannot be read (or is corrupt) stops the start: serving without it
    // could bring back keys that were revoked.
    fail(`switchyard: cannot start: ${(err as Error).message}`, 1);
  }
  const a = gw.addresses;
  gw.log.info({
    public: `${a.public.address}:${a.public.port}`,
    private: a.private ? `${a.private.address}:${a.private.port}` : undefined,
    admin: `${a.admin.address}:${a.admin.port}`,
    config_version: gw.store.current.version,
  }, 'switchyard listening');

  const reload = (): void => void gw.reload();
  const stopWatching = watchConfig(file, reload);
  process.on('SIGHUP', reload);
  let repeated = false;
  const stop = (signal: string, quiet = false): void => {
    if (gw.draining) {
      // Ctrl-C under npm reaches the process twice (terminal and npm): say it once.
      if (!repeated && !quiet) gw.log.warn({ signal }, 'already draining; in-flight requests keep their grace period');
      repeated ||= !quiet;
      return;
    }
    stopWatching();
    gw.log.info({ signal }, 'stopping');
    void gw.shutdown().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  return { gw, stop, reload };
}
