import type { Logger } from '../gateway/logger.ts';
import type { InstanceRegistry } from '../gateway/upstream/instance.ts';
import { compile, type CompileDeps, type Snapshot } from './compile.ts';
import type { GatewayConfig } from './schema.ts';

/**
 * Holds the current snapshot and swaps it by one assignment. A new config is compiled
 * whole before the swap, so a failure leaves the running snapshot untouched (no rollback
 * code), and requests in flight keep the snapshot they started with.
 */
export class ConfigStore {
  #current: Snapshot;
  #warned: string | undefined;
  readonly #deps: (cfg: GatewayConfig) => CompileDeps;
  readonly #instances: InstanceRegistry;
  readonly #log: Logger;

  /** `deps(cfg)`: the live pieces to compile `cfg` with (its token verifier follows its `entra`). */
  constructor(initial: GatewayConfig, instances: InstanceRegistry, deps: (cfg: GatewayConfig) => CompileDeps, log: Logger) {
    this.#deps = deps;
    this.#instances = instances;
    this.#log = log;
    this.#current = this.#compile(initial);
  }

  /** The snapshot to use for a request: read it once per request. */
  get current(): Snapshot {
    return this.#current;
  }

  /** Compile and swap in a validated config. Throws (and keeps the old snapshot) if compile fails. */
  apply(cfg: GatewayConfig): Snapshot {
    const next = this.#compile(cfg);
    this.#current = next;
    // Pools no snapshot names any more close once their in-flight requests end.
    this.#instances.retain(next.origins);
    return next;
  }

  /** Recompile the running config (after a key change that lives outside the file). */
  refresh(): Snapshot {
    return this.apply(this.#current.config);
  }

  #compile(cfg: GatewayConfig): Snapshot {
    const snap = compile(cfg, this.#deps(cfg));
    // A recompile of the same config (a key regeneration) has nothing new to warn about.
    if (snap.version !== this.#warned) {
      for (const w of snap.warnings) this.#log.warn({ config_version: snap.version }, w);
      this.#warned = snap.version;
    }
    return snap;
  }
}
