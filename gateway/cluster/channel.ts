import { isOurs, type Call, type PrimaryMessage, type WorkerMessage } from './messages.ts';

/** How long a worker waits for the primary's answer before it gives up (and says so to its caller). */
export const CALL_TIMEOUT_MS = 10_000;

/** The end of an IPC channel a worker holds: `process` in a cluster worker. */
export interface ChannelEnd {
  send?: (message: unknown) => boolean;
  readonly connected?: boolean;
  on(event: 'message', fn: (m: unknown) => void): unknown;
  on(event: 'disconnect', fn: () => void): unknown;
}

type Push = Exclude<PrimaryMessage, { type: 'switchyard:reply' }>;

/**
 * A worker's channel to its primary: calls that get one reply each (matched by id, bounded
 * by {@link CALL_TIMEOUT_MS}), and the messages the primary sends unasked. A call made
 * while the primary is out of reach fails at once: the caller answers 503, never hangs.
 */
export class PrimaryChannel {
  readonly #end: ChannelEnd;
  readonly #timeoutMs: number;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  readonly #handlers = new Map<Push['type'], ((m: Push) => void)[]>();

  constructor(end: ChannelEnd = process as ChannelEnd, timeoutMs = CALL_TIMEOUT_MS) {
    this.#end = end;
    this.#timeoutMs = timeoutMs;
    end.on('message', (m) => {
      if (isOurs<PrimaryMessage>(m)) this.#receive(m);
    });
    end.on('disconnect', () => this.#failAll('the cluster primary is gone'));
  }

  /** Tell the primary something (no answer expected); false when the channel is closed. */
  send(m: WorkerMessage): boolean {
    if (!this.#end.connected || !this.#end.send) return false;
    try {
      return this.#end.send(m);
    } catch {
      // Closed between the check and the send.
      return false;
    }
  }

  /** Ask the primary; rejects when it does not answer, answers with an error, or is gone. */
  call<T>(call: Call): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`the cluster primary did not answer ${call.op} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      if (!this.send({ type: 'switchyard:call', id, call })) {
        clearTimeout(timer);
        this.#pending.delete(id);
        reject(new Error('the cluster primary is out of reach'));
      }
    });
  }

  /** Handle a message of `type` the primary sends unasked. */
  on<K extends Push['type']>(type: K, fn: (m: Extract<Push, { type: K }>) => void): void {
    const list = this.#handlers.get(type) ?? [];
    list.push(fn as (m: Push) => void);
    this.#handlers.set(type, list);
  }

  #receive(m: PrimaryMessage): void {
    if (m.type !== 'switchyard:reply') {
      for (const fn of this.#handlers.get(m.type) ?? []) fn(m);
      return;
    }
    const p = this.#pending.get(m.id);
    if (!p) return; // Timed out already.
    this.#pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.ok) p.resolve(m.value);
    else p.reject(new Error(m.error));
  }

  #failAll(why: string): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(new Error(why));
    }
  }
}
