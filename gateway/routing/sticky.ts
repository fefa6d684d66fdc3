import type { IncomingHttpHeaders } from 'node:http';

/**
 * How much of the sticky header's value is hashed, in characters (Node reads header values
 * as latin1, so characters are bytes): a longer value costs no more than this, and callers
 * whose values share the first {@link STICKY_KEY_MAX} characters share a deployment.
 */
export const STICKY_KEY_MAX = 256;

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;
/** 2^-32: a 32-bit hash as a fraction. */
const TWO_TO_MINUS_32 = 1 / 4294967296;

/** MurmurHash3's finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * MurmurHash3 (x86, 32-bit) of the UTF-16LE encoding of `s`'s first `end` code units:
 * two code units per 4-byte block. Fast, well mixed, not cryptographic.
 */
export function murmur3(s: string, seed: number, end = s.length): number {
  let h = seed | 0;
  let i = 0;
  for (; i + 1 < end; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < end) {
    let k = s.charCodeAt(i);
    k = Math.imul(k, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  return fmix32(h ^ (end * 2));
}

/**
 * Sticky split (SPEC §2 `sticky: { header }`): one caller, one deployment, by a consistent
 * hash of the header's value, while the weights hold overall.
 *
 * Weighted rendezvous hashing (highest random weight): for caller `key` each deployment `d`
 * with positive weight `w` scores `-w / ln(u)`, `u = (murmur3(key, seed_d) + ½) / 2^32` in
 * (0, 1), `seed_d = murmur3(d)`, and the highest score wins. `-ln(u) / w` is an exponential
 * draw of rate `w`, so the winner (the first arrival of the race) is `d` with probability
 * `w_d / Σw`: proportional over many callers. When weights change, a caller moves only if
 * its winner changes, which happens only to callers who must move (90/10 → 80/20 moves
 * about 10% of them, all from blue to green: blue's scores only fell, green's only rose).
 * With a deployment left out (`usable`), its callers go to their runner-up, again in
 * proportion to the remaining weights, and everyone else stays where they were.
 *
 * A pure function of (weights, key): nothing is kept per caller, a reload that keeps the
 * weights keeps every assignment, and every replica assigns a caller alike.
 */
export class StickySplit {
  /** The header, lower case (the schema lower-cases it). */
  readonly header: string;
  readonly #names: readonly string[];
  readonly #weights: Float64Array;
  readonly #seeds: Int32Array;

  constructor(weights: Readonly<Record<string, number>>, header: string) {
    this.header = header;
    const entries = Object.entries(weights).filter(([, w]) => w > 0);
    this.#names = entries.map(([n]) => n);
    this.#weights = Float64Array.from(entries.map(([, w]) => w));
    this.#seeds = Int32Array.from(entries.map(([n]) => murmur3(n, 0x5eed)));
  }

  /** True when no deployment has positive traffic. */
  get empty(): boolean {
    return this.#names.length === 0;
  }

  /**
   * The caller's key: the first value of the sticky header, at most {@link STICKY_KEY_MAX}
   * characters; undefined when the request has none (or an empty one). Node joins repeated
   * headers with `, `, so only a value with a comma in its first characters is looked up
   * again in `rawHeaders` (an id that itself contains a comma is kept whole).
   */
  keyOf(headers: IncomingHttpHeaders, rawHeaders: readonly string[]): string | undefined {
    const v = headers[this.header];
    if (typeof v !== 'string' || v === '') return undefined;
    const head = v.length > STICKY_KEY_MAX ? v.slice(0, STICKY_KEY_MAX) : v;
    if (!head.includes(',')) return head;
    const name = this.header;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const n = rawHeaders[i]!;
      if (n.length === name.length && n.toLowerCase() === name) {
        const first = rawHeaders[i + 1]!;
        if (first === '') return undefined;
        return first.length > STICKY_KEY_MAX ? first.slice(0, STICKY_KEY_MAX) : first;
      }
    }
    return head;
  }

  /**
   * The deployment for caller `key` among those `usable` accepts (all with positive
   * weight, without it), or undefined when there is none. Only the first
   * {@link STICKY_KEY_MAX} characters of `key` count.
   */
  pick(key: string, usable?: (name: string) => boolean): string | undefined {
    const names = this.#names;
    const weights = this.#weights;
    const seeds = this.#seeds;
    const end = Math.min(key.length, STICKY_KEY_MAX);
    let best = -1;
    let bestArrival = Infinity;
    for (let i = 0; i < names.length; i++) {
      if (usable !== undefined && !usable(names[i]!)) continue;
      const u = (murmur3(key, seeds[i]!, end) + 0.5) * TWO_TO_MINUS_32;
      // The highest -w / ln(u) is the lowest -ln(u) / w (both sides positive).
      const arrival = -Math.log(u) / weights[i]!;
      if (arrival < bestArrival) {
        bestArrival = arrival;
        best = i;
      }
    }
    return best < 0 ? undefined : names[best];
  }
}
