import type { LiveDoc } from './live-doc.ts';

/** The outcome of a conditional write. */
export type WriteResult =
  | { readonly ok: true }
  /** Another writer got there first: the document as it is now. */
  | { readonly ok: false; readonly current: LiveDoc };

/**
 * Where the live document is kept: a state file (one gateway process), Redis (replicas), or
 * the cluster primary over IPC (workers). Writes are compare-and-set on the version, so two
 * edits made from the same version cannot both land.
 */
export interface LiveBackend {
  /** For errors and logs: `state file /path`, `Redis 127.0.0.1:6379` (never a password). */
  readonly where: string;
  /** The stored document ({@link EMPTY_DOC} when there is none). Rejects when it cannot be read. */
  load(): Promise<LiveDoc>;
  /**
   * Store `next` (whose version is `expected + 1`) if the stored version is still
   * `expected`. Rejects when the store cannot be reached or written (nothing changed).
   */
  write(expected: number, next: LiveDoc): Promise<WriteResult>;
  /**
   * Call `fn` with every newer document another writer stored (Redis pub/sub, plus a
   * periodic version check that heals a missed message). Backends with one writer never call it.
   */
  watch(fn: (doc: LiveDoc) => void): void;
  close(): Promise<void>;
}
