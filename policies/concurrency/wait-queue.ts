import type { Expiring, PriorityClass, Verdict } from '../policy.ts';

/** Lane index by class: lower is served first. */
export const LANE: Readonly<Record<PriorityClass, number>> = { critical: 0, standard: 1, sheddable: 2 };
export const SHEDDABLE_LANE = 2;

/** A waiter's life: in a lane, holding a permit, or finished (left, refused, or released). */
export const QUEUED = 0;
export const GRANTED = 1;
export const FINISHED = 2;
type WaiterState = typeof QUEUED | typeof GRANTED | typeof FINISHED;

/** What a waiter needs of its limiter. */
export interface WaiterOwner {
  /** Take `w` out of its lane (and the deadlines) and settle its promise with `verdict`. */
  withdraw(w: Waiter, verdict: Verdict): void;
  /** The permit `w` held comes back. */
  release(): void;
  /** A queued request's deadline passed. */
  readonly timedOut: Verdict;
  /** A queued request's client went away. */
  readonly gone: Verdict;
}

/**
 * One queued request: a node of its lane (a doubly linked list, so leaving is O(1) from
 * anywhere), a shared deadline ({@link Expiring}: no Node timer per waiter) and an abort
 * listener on the request's signal (`handleEvent`: no closure).
 *
 * The abort listener stays on after the permit was granted, until the permit comes back:
 * between the grant and the pipeline registering the verdict's `onDone` there is a
 * microtask in which the client may leave; then the listener returns the permit, and
 * `finish` makes a later `onDone` a no-op. Either way the permit comes back exactly once.
 */
export class Waiter implements Expiring {
  deadline = 0;
  timerPrev: Expiring | undefined;
  timerNext: Expiring | undefined;
  /** Lane links. */
  prev: Waiter | undefined;
  next: Waiter | undefined;
  state: WaiterState = QUEUED;
  readonly lane: number;
  readonly #owner: WaiterOwner;
  readonly #signal: AbortSignal;
  #resolve: ((v: Verdict) => void) | undefined;
  /** Returns the permit once; the `onDone` of the verdict this waiter is granted with. */
  readonly finish = (): void => {
    if (this.state !== GRANTED) return;
    this.state = FINISHED;
    this.#signal.removeEventListener('abort', this);
    this.#owner.release();
  };

  constructor(owner: WaiterOwner, lane: number, signal: AbortSignal) {
    this.#owner = owner;
    this.lane = lane;
    this.#signal = signal;
  }

  /** The promise the policy returns; settled by {@link settle}. */
  wait(): Promise<Verdict> {
    this.#signal.addEventListener('abort', this);
    return new Promise<Verdict>((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** Settle the promise. A refusal also drops the abort listener; a grant keeps it (see the class doc). */
  settle(v: Verdict, granted: boolean): void {
    this.state = granted ? GRANTED : FINISHED;
    if (!granted) this.#signal.removeEventListener('abort', this);
    this.#resolve?.(v);
    this.#resolve = undefined;
  }

  /** The deadline passed while queued (the shared ticker calls this). */
  expired(): void {
    if (this.state === QUEUED) this.#owner.withdraw(this, this.#owner.timedOut);
  }

  /** The client went away: leave the queue at once, or give back a permit not yet taken up. */
  handleEvent(): void {
    if (this.state === QUEUED) this.#owner.withdraw(this, this.#owner.gone);
    else this.finish();
  }
}

/** One priority class's FIFO: oldest at the head, newest at the tail. */
export class Lane {
  head: Waiter | undefined;
  tail: Waiter | undefined;
  size = 0;

  push(w: Waiter): void {
    w.prev = this.tail;
    w.next = undefined;
    if (this.tail) this.tail.next = w;
    else this.head = w;
    this.tail = w;
    this.size++;
  }

  remove(w: Waiter): void {
    if (w.prev) w.prev.next = w.next;
    else this.head = w.next;
    if (w.next) w.next.prev = w.prev;
    else this.tail = w.prev;
    w.prev = undefined;
    w.next = undefined;
    this.size--;
  }
}
