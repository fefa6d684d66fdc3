import type { Clock } from '../clock.ts';
import { GatewayError } from '../errors.ts';
import type { CompiledDeployment } from '../snapshot/deployment.ts';
import { Attempt, type AttemptListener, type AttemptRequest, type AttemptResult } from './attempt.ts';
import type { OutlierDetector } from '../health/outlier.ts';
import type { Instance } from './instance.ts';
import { pickInstance } from './select.ts';
import type { Sink } from './sink.ts';

/** Who a forward reports to: the live exchange, or a shadow request. */
export interface ForwardOwner {
  /** The attempt in progress (aborted if the client goes away). */
  attempt: Attempt | undefined;
  /** Origin of the instance tried last, and whether its connect failed. */
  instance: string | undefined;
  connectFailed: boolean;
  /** Called once, when the last attempt ended. */
  forwarded(r: AttemptResult): void;
}

/** Sends per deployment: connect failures are retried on another instance at most this often. */
const MAX_RETRIES = 2;
const NO_READY = new GatewayError('NoReadyInstance');
const REFUSED = new GatewayError('BadGateway', 'The model instance refused the connection.');

/**
 * Forwards one request to one of a deployment's instances and reports how it ended. It
 * owns the attempts and the retry rule: only a failure to connect (nothing reached the
 * instance, so even a POST is safe to send again) is retried, on an instance not tried yet,
 * at most {@link MAX_RETRIES} times. Every other failure is reported as it is; a request
 * is never sent twice.
 */
export class Forward implements AttemptListener {
  readonly #owner: ForwardOwner;
  readonly #sink: Sink;
  readonly #deployment: CompiledDeployment;
  readonly #request: AttemptRequest;
  readonly #clock: Clock;
  readonly #random: () => number;
  /** Instances whose connect failed; allocated on the first retry only. */
  #tried: Instance[] | undefined;
  #current: Instance | undefined;
  #attempt: Attempt | undefined;
  /** An instance to go to only when no other is ready (a second live copy for the noise baseline). */
  readonly #avoid: readonly Instance[] | undefined;

  constructor(owner: ForwardOwner, sink: Sink, deployment: CompiledDeployment, request: AttemptRequest, clock: Clock, random: () => number, avoid?: Instance) {
    this.#owner = owner;
    this.#sink = sink;
    this.#deployment = deployment;
    this.#request = request;
    this.#clock = clock;
    this.#random = random;
    this.#avoid = avoid !== undefined && deployment.instances.length > 1 ? [avoid] : undefined;
  }

  start(): void {
    const instances = this.#deployment.instances;
    const now = this.#clock();
    let instance = pickInstance(instances, now, this.#random, this.#tried ?? this.#avoid);
    if (!instance && !this.#tried && this.#avoid) instance = pickInstance(instances, now, this.#random);
    if (!instance) {
      this.#owner.forwarded({ kind: 'error', error: this.#tried ? REFUSED : NO_READY, connectFailed: this.#tried !== undefined });
      return;
    }
    this.#current = instance;
    this.#owner.instance = instance.origin;
    const attempt = new Attempt(this.#sink, instance, this);
    this.#attempt = attempt;
    this.#owner.attempt = attempt;
    attempt.start(this.#request);
  }

  attemptDone(r: AttemptResult): void {
    const owner = this.#owner;
    owner.attempt = undefined;
    const outlier = this.#deployment.outlier;
    if (outlier) this.#report(outlier, r);
    if (r.kind === 'error') {
      owner.connectFailed = r.connectFailed;
      const tried = this.#tried ?? [];
      if (r.connectFailed && !this.#sink.destroyed && tried.length < MAX_RETRIES && this.#deployment.instances.length > tried.length + 1) {
        tried.push(this.#current!);
        this.#tried = tried;
        this.start();
        return;
      }
    }
    owner.forwarded(r);
  }

  /**
   * Tell outlier detection how the attempt went, from the instance's side: it failed to
   * connect, reset, timed out or answered 5xx; a client that went away says nothing of it.
   */
  #report(outlier: OutlierDetector, r: AttemptResult): void {
    // The client went away: its request was aborted, which says nothing of the instance (a
    // load generator stopping with 64 requests in flight must not eject a healthy model).
    if (this.#sink.destroyed) return;
    const h = this.#current!.health;
    const status = this.#attempt?.status ?? 0;
    const now = this.#clock();
    if (r.kind === 'error') {
      // An upload the client let stall is the client's doing (408), not the instance's.
      if (r.error.code === 'RequestTimeout') return;
      outlier.failed(h, now);
    } else if (r.cut === 'client_aborted') {
      if (status >= 500) outlier.failed(h, now);
    } else if (!r.complete || status >= 500) {
      outlier.failed(h, now);
    } else {
      outlier.succeeded(h, now);
    }
  }
}
