import type { StateRegistry } from '../../policies/policy.ts';

/** What a registry entry may do when no snapshot asks for it any more. */
interface Disposable { dispose?(): void }

/**
 * Live state kept by a stable key across snapshot swaps (token buckets, queues, breakers,
 * split positions, verifier caches), the way {@link InstanceRegistry} keeps pools: config
 * describes, registries remember. Each compile records the keys it asks for; after a swap,
 * {@link retain} drops (and disposes) what the new snapshot did not ask for, so a reload that
 * keeps a setting keeps its state and one that changes the key starts afresh.
 */
export class LiveStateRegistry implements StateRegistry {
  readonly #entries = new Map<string, unknown>();
  #asked = new Set<string>();

  get<T>(key: string, create: () => T): T {
    this.#asked.add(key);
    if (this.#entries.has(key)) return this.#entries.get(key) as T;
    const value = create();
    this.#entries.set(key, value);
    return value;
  }

  /** Start recording the keys one compile asks for; returns them for {@link retain}. */
  begin(): ReadonlySet<string> {
    this.#asked = new Set();
    return this.#asked;
  }

  /** Keep only `keys` (those the snapshot now in force asked for). */
  retain(keys: ReadonlySet<string>): void {
    for (const [key, value] of this.#entries) {
      if (keys.has(key)) continue;
      this.#entries.delete(key);
      (value as Disposable | null)?.dispose?.();
    }
  }

  /** Entries kept (for tests and the admin view). */
  get size(): number {
    return this.#entries.size;
  }
}
