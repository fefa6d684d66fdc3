import { formatIssues, loadConfigFile } from '../../config/load.ts';
import { GatewayError } from '../errors.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { Snapshot } from '../snapshot/compile.ts';

/** The outcome of a reload. */
export type ReloadResult = { readonly ok: true; readonly version: string } | { readonly ok: false; readonly error: string };

/** Apply a file's document (as written, and parsed): the admin API's edits are laid on it. */
export type ApplyFile = (raw: Readonly<Record<string, unknown>>, cfg: GatewayConfig, warnings: readonly string[]) => Promise<Snapshot>;

/**
 * The config file as a source of the running config (the admin API's edits are laid on it
 * by LiveConfig). A reload reads, validates and applies whole or not at all; an invalid
 * file, or one the stored edits do not fit, is refused, logged and counted, and the
 * running config stays.
 */
export class FileConfigSource {
  readonly file: string | undefined;
  readonly #env: NodeJS.ProcessEnv | undefined;
  readonly #apply: ApplyFile;
  readonly #metrics: Metrics;
  readonly #log: Logger;
  #queue: Promise<void> = Promise.resolve();

  constructor(file: string | undefined, env: NodeJS.ProcessEnv | undefined, apply: ApplyFile, metrics: Metrics, log: Logger) {
    this.file = file;
    this.#env = env;
    this.#apply = apply;
    this.#metrics = metrics;
    this.#log = log;
  }

  /**
   * Re-read the file. Reloads run one at a time (SIGHUP and a file change can arrive
   * together), so the last one started is the one that stays.
   */
  reload(): Promise<ReloadResult> {
    const next = this.#queue.then(() => this.#reload());
    this.#queue = next.then(() => undefined, () => undefined);
    return next;
  }

  async #reload(): Promise<ReloadResult> {
    const file = this.file;
    if (!file) return { ok: false, error: 'no config file to reload' };
    const r = await loadConfigFile(file, this.#env);
    if (!r.ok) {
      this.#metrics.reloads.inc({ result: 'failure' });
      this.#log.error({ file, issues: r.issues }, 'config reload refused; the running config stays');
      return { ok: false, error: formatIssues(r.issues) };
    }
    try {
      const snap = await this.#apply(r.raw, r.config, r.warnings);
      this.#metrics.reloads.inc({ result: 'success' });
      this.#log.info({ file, config_version: snap.version }, 'config reloaded');
      return { ok: true, version: snap.version };
    } catch (err) {
      this.#metrics.reloads.inc({ result: 'failure' });
      if (err instanceof GatewayError && err.details) {
        // The file is valid alone, but not with the admin API's edits laid on it.
        this.#log.error({ file, issues: err.details }, 'config reload refused: the admin edits do not fit the new file; the running config stays');
        return { ok: false, error: `with the admin edits laid on it: ${formatIssues(err.details)}` };
      }
      this.#log.error({ file, err }, 'config reload failed to compile; the running config stays');
      return { ok: false, error: String(err) };
    }
  }
}
