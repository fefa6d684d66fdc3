import type { PolicyContext } from '../policy.ts';
import type { Cell } from './gcra.ts';

/** Callers one endpoint's per-caller limit remembers at most, per kind of caller (key slot, token, client IP). */
export const MAX_CALLERS = 50_000;

/**
 * Buckets by caller, bounded: a client spraying source addresses must not grow memory
 * without limit. When the map is at its cap, first every FULL bucket goes (a full bucket
 * carries no information: a new one starts full too, so dropping it changes no decision);
 * if that frees less than a tenth of the cap, the oldest-created buckets go as well until
 * it does (that forgives those callers' debt, the price of a bound). Each sweep frees at
 * least a tenth, so its cost is amortised to O(1) per new caller.
 */
export class CallerCells {
  readonly #cells = new Map<string, Cell>();
  readonly #cap: number;
  readonly #low: number;

  constructor(cap = MAX_CALLERS) {
    this.#cap = Math.max(1, cap);
    this.#low = Math.max(0, Math.floor(this.#cap * 0.9));
  }

  /** The bucket of caller `id` (created full when new). */
  cell(id: string, now: number): Cell {
    const known = this.#cells.get(id);
    if (known) return known;
    if (this.#cells.size >= this.#cap) this.#evict(now);
    const cell: Cell = { tat: now };
    this.#cells.set(id, cell);
    return cell;
  }

  /** Callers remembered now. */
  get size(): number {
    return this.#cells.size;
  }

  /** Whether caller `id` has a bucket (tests). */
  has(id: string): boolean {
    return this.#cells.has(id);
  }

  #evict(now: number): void {
    for (const [id, c] of this.#cells) if (c.tat <= now) this.#cells.delete(id);
    if (this.#cells.size <= this.#low) return;
    // Map iterates in insertion order: the oldest-created buckets go first.
    for (const id of this.#cells.keys()) {
      this.#cells.delete(id);
      if (this.#cells.size <= this.#low) return;
    }
  }
}

/**
 * The per-caller buckets of one limit, one map per kind of caller, so a caller's identity
 * is the map key as it comes (no string built per request): the principal's key slot, or
 * token `oid` (else `appid`/`azp`/`sub`), as authentication set it; without a principal,
 * the client IP.
 */
export class CallerPartitions {
  readonly keys: CallerCells;
  readonly tokens: CallerCells;
  readonly admins: CallerCells;
  readonly ips: CallerCells;

  constructor(cap = MAX_CALLERS) {
    this.keys = new CallerCells(cap);
    this.tokens = new CallerCells(cap);
    this.admins = new CallerCells(cap);
    this.ips = new CallerCells(cap);
  }

  /** The bucket of the caller of `ctx`. */
  cell(ctx: PolicyContext, now: number): Cell {
    const p = ctx.principal;
    if (!p) return this.ips.cell(ctx.clientIp, now);
    const cells = p.type === 'key' ? this.keys : p.type === 'aad_token' ? this.tokens : this.admins;
    return cells.cell(p.id, now);
  }
}

/** The caller of `ctx` as one string (the shared store's key suffix): `key:primary`, `aad_token:<oid>`, `ip:<address>`. */
export function callerKey(ctx: PolicyContext): string {
  const p = ctx.principal;
  return p ? `${p.type}:${p.id}` : `ip:${ctx.clientIp}`;
}
