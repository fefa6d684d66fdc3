import { hash } from 'node:crypto';
import type { Clock } from '../../../gateway/clock.ts';
import { systemClock } from '../../../gateway/clock.ts';
import type { Principal } from '../../principal.ts';

interface Entry {
  readonly principal: Principal;
  /** The token's `exp` in ms: the entry is never served at or past it. */
  readonly expiresAtMs: number;
}

/** Options of a {@link TokenCache}. */
export interface TokenCacheOptions {
  /** Injected clock (ms). */
  now?: Clock;
  /** Bound on entries; the oldest insertion is evicted first (default 10,000). */
  maxEntries?: number;
}

/**
 * Successfully verified tokens, so repeat callers skip the signature check.
 *
 * Keyed by the SHA-256 of the token: the cache never holds a bearer credential itself.
 * Only successes go in: a token rejected because its key was not yet published must be
 * accepted once the key set rotates in, so failures are never remembered.
 */
export class TokenCache {
  readonly #now: Clock;
  readonly #maxEntries: number;
  // A Map iterates in insertion order, so its first key is the oldest entry.
  readonly #entries = new Map<string, Entry>();

  constructor(opts: TokenCacheOptions = {}) {
    this.#now = opts.now ?? systemClock;
    this.#maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
  }

  /** Entries currently held (expired ones linger until looked up or evicted). */
  get size(): number {
    return this.#entries.size;
  }

  /** The cached principal, or undefined when absent or at/after the token's `exp`. */
  get(token: string): Principal | undefined {
    const key = digest(token);
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (this.#now() >= entry.expiresAtMs) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry.principal;
  }

  /** Remember a verified token until its `exp` (seconds since the epoch). */
  set(token: string, principal: Principal, expS: number): void {
    const expiresAtMs = expS * 1000;
    if (!Number.isFinite(expiresAtMs) || this.#now() >= expiresAtMs) return;
    const key = digest(token);
    this.#entries.delete(key);
    while (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    this.#entries.set(key, { principal, expiresAtMs });
  }
}

function digest(token: string): string {
  return hash('sha256', token, 'base64url');
}
