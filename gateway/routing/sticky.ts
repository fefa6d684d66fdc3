/**
 * Sticky split (SPEC §2 `sticky: { header }`): one caller, one deployment, by a consistent
 * hash of the header's value, while the weights hold overall. Not built yet: picks nothing,
 * so the weighted split decides.
 */
export class StickySplit {
  readonly header: string;

  constructor(weights: Readonly<Record<string, number>>, header: string) {
    void weights;
    this.header = header;
  }

  /** The deployment for caller `key` among those `usable` accepts, or undefined. */
  pick(key: string, usable?: (name: string) => boolean): string | undefined {
    void key;
    void usable;
    return undefined;
  }
}
