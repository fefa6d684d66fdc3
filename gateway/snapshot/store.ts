import type { GatewayConfig } from '../../config/schema.ts';
import type { Logger } from '../logger.ts';
import type { LiveStateRegistry } from '../state/state-registry.ts';
import { compile, type CompileDeps, type Snapshot } from './compile.ts';

/** Called after every swap, with the snapshot now in force and the one it replaced. */
export type SnapshotListener = (next: Snapshot, prev: Snapshot | undefined) => void;

/**
 * Holds the current snapshot and swaps it by one assignment. A new config is compiled
 * whole before the swap, so a failure leaves the running snapshot untouched (no rollback
 * code), and requests in flight keep the snapshot they started with. What follows a swap
 * (retaining live state, publishing gauges, starting probes) subscribes here.
 */
export class ConfigStore {
  #current: Snapshot | undefined;
  #warned: string | undefined;
  readonly #deps: CompileDeps;
  readonly #state: LiveStateRegistry;
  readonly #log: Logger;
  readonly #listeners: SnapshotListener[] = [];

  constructor(deps: CompileDeps, state: LiveStateRegistry, log: Logger) {
    this.#deps = deps;
    this.#state = state;
    this.#log = log;
  }

  /** The snapshot to use for a request: read it once per request. */
  get current(): Snapshot {
    if (!this.#current) throw new Error('no config applied yet');
    return this.#current;
  }

  /** Run `fn` after every swap from now on (and at once for the snapshot in force, if any). */
  subscribe(fn: SnapshotListener): void {
    this.#listeners.push(fn);
    if (this.#current) fn(this.#current, undefined);
  }

  /** Compile and swap in a validated config. Throws (and keeps the old snapshot) if compile fails. */
  apply(cfg: GatewayConfig, loaderWarnings: readonly string[] = []): Snapshot {
    const asked = this.#state.begin();
    const next = compile(cfg, this.#deps, loaderWarnings);
    const prev = this.#current;
    this.#current = next;
    this.#state.retain(asked);
    // Pools no snapshot names any more close once their in-flight requests end.
    this.#deps.instances.retain(next.origins);
    // A recompile of the same config (a key regeneration) has nothing new to warn about.
    if (next.version !== this.#warned) {
      for (const w of next.warnings) this.#log.warn({ config_version: next.version }, w);
      this.#warned = next.version;
    }
    for (const fn of this.#listeners) fn(next, prev);
    return next;
  }

  /** Recompile the running config (after a key change that lives outside the file). */
  refresh(): Snapshot {
    return this.apply(this.current.config, this.current.warnings);
  }
}
