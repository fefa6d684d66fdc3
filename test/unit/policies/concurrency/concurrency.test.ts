import assert from 'node:assert/strict';
import { test } from 'node:test';
import { concurrencyFactory, limiterKey } from '../../../../policies/concurrency/concurrency.ts';
import { DeploymentLimiter } from '../../../../policies/concurrency/limiter.ts';
import type { Outcome, Policy, PolicyDeps, PriorityClass, Verdict } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, scopeOf, type FakeDeps } from '../../../helpers/policy.ts';

const OUTCOME: Outcome = { status: 200, error: undefined, termination: 'completed', connectFailed: false, instance: undefined, durationMs: 1 };

function doc(settings: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    endpoints: {
      cars: {
        keys: { primary: 'k-concurrency-1' },
        deployments: { blue: { instances: ['http://127.0.0.1:1'], request_settings: settings } },
      },
    },
  };
}

/** The deployment-stage scope of cars/blue. */
function scope(settings: Record<string, unknown> = {}) {
  const s = scopeOf(doc(settings));
  return { ...s, deployment: { name: 'blue', config: s.endpointConfig.deployments.blue! } };
}

/** A mutable ready count for the health view. */
function harness(settings: Record<string, unknown>, over: Partial<PolicyDeps> = {}): { p: Policy; deps: FakeDeps; ready: { n: number } } {
  const ready = { n: 1 };
  const deps = fakeDeps({ health: { readyInstances: () => ready.n }, ...over });
  const p = concurrencyFactory.create(scope(settings), deps);
  assert.ok(p);
  return { p, deps, ready };
}

const ctx = (priority: PriorityClass = 'standard'): FakeContext => new FakeContext({ deployment: 'blue', priority });

/** A synchronous admission: returns the `onDone` that gives the permit back. */
function admitted(v: Verdict | Promise<Verdict>): (o: Outcome) => void {
  assert.ok(!(v instanceof Promise), 'admitted synchronously');
  assert.equal(v.kind, 'continue');
  assert.ok(v.kind === 'continue' && v.onDone, 'an admission carries onDone (the permit)');
  return v.onDone;
}

/** A queued request: its promise, plus what it settled with so far (undefined: still waiting). */
interface Queued { readonly promise: Promise<Verdict>; settled: Verdict | undefined; readonly ctx: FakeContext }
function queued(p: Policy, c: FakeContext = ctx()): Queued {
  const v = p.evaluate(c);
  assert.ok(v instanceof Promise, 'queued (a promise)');
  const q: Queued = { promise: v, settled: undefined, ctx: c };
  void v.then((r) => { q.settled = r; });
  return q;
}

/** A verdict given at once (refusals never wait). */
function sync(v: Verdict | Promise<Verdict>): Verdict {
  assert.ok(!(v instanceof Promise), 'answered synchronously');
  return v;
}

/** Let settled promises run their callbacks. */
const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function refusal(v: Verdict | undefined, reason: 'queue_full' | 'queue_timeout', retryAfter = '1'): void {
  assert.ok(v && v.kind === 'reject', `refused (${reason})`);
  assert.equal(v.error.code, 'TooManyPendingRequests');
  assert.equal(v.error.status, 429);
  assert.equal(v.reason, reason);
  assert.equal(v.error.headers?.['retry-after'], retryAfter);
}

function grantedDone(q: Queued): (o: Outcome) => void {
  assert.ok(q.settled, 'settled');
  assert.equal(q.settled.kind, 'continue', 'granted');
  assert.ok(q.settled.kind === 'continue' && q.settled.onDone);
  return q.settled.onDone;
}

const load = (deps: FakeDeps) => deps.gauges.loads.get('cars/blue')!();

test('compile: every deployment gets a limiter, with SPEC defaults when request_settings is silent', () => {
  assert.equal(concurrencyFactory.stage, 'deployment');
  const deps = fakeDeps();
  const p = concurrencyFactory.create(scope(), deps);
  assert.ok(p instanceof DeploymentLimiter);
  assert.equal(p.name, 'cars.blue.concurrency');
  assert.equal(p.limitFor(1), 16, 'default 16 per instance');
  // An endpoint-stage scope (no deployment) gets nothing.
  assert.equal(concurrencyFactory.create(scopeOf(doc()), deps), undefined);
});

test('admits up to the limit synchronously with one shared frozen verdict, then queues', () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 2 });
  const a = p.evaluate(ctx());
  const b = p.evaluate(ctx());
  assert.equal(a, b, 'the same verdict object: nothing allocated per admission');
  assert.ok(Object.isFrozen(a));
  admitted(a);
  const q = queued(p);
  assert.deepEqual(load(deps), { inFlight: 2, queued: 1 });
  assert.equal(q.settled, undefined);
});

test('the queue holds as many again as the limit; beyond it 429 queue_full with Retry-After', async () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 2, max_queue_wait_ms: 2500 });
  admitted(p.evaluate(ctx()));
  admitted(p.evaluate(ctx()));
  queued(p);
  queued(p);
  const v = p.evaluate(ctx());
  assert.ok(!(v instanceof Promise), 'a refusal is immediate');
  refusal(v, 'queue_full', '3');
  assert.deepEqual(load(deps), { inFlight: 2, queued: 2 });
  await flush();
});

test('FIFO within a class; releasing hands the permit straight to the oldest waiter', async () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 2 });
  const done = admitted(p.evaluate(ctx()));
  admitted(p.evaluate(ctx()));
  const first = queued(p);
  const second = queued(p);
  done(OUTCOME);
  assert.deepEqual(load(deps), { inFlight: 2, queued: 1 }, 'handed over: the permit never came free');
  await flush();
  const firstDone = grantedDone(first);
  assert.equal(second.settled, undefined);
  // Nobody can slip in between: a new arrival queues behind the second.
  const third = queued(p);
  firstDone(OUTCOME);
  await flush();
  grantedDone(second);
  assert.equal(third.settled, undefined);
});

test('critical waiters are served before standard ones, sheddable last', async () => {
  const { p } = harness({ max_concurrent_requests_per_instance: 3 });
  const dones = [admitted(p.evaluate(ctx())), admitted(p.evaluate(ctx())), admitted(p.evaluate(ctx()))];
  const shed = queued(p, ctx('sheddable'));
  const std = queued(p, ctx('standard'));
  const crit = queued(p, ctx('critical'));
  dones[0]!(OUTCOME);
  await flush();
  grantedDone(crit);
  assert.equal(std.settled, undefined);
  dones[1]!(OUTCOME);
  await flush();
  grantedDone(std);
  assert.equal(shed.settled, undefined);
  dones[2]!(OUTCOME);
  await flush();
  grantedDone(shed);
});

test('sheddable requests get no queue slot once the queue is half full', async () => {
  // Limit 4: a queue of 4; half full at 2.
  const { p } = harness({ max_concurrent_requests_per_instance: 4 });
  for (let i = 0; i < 4; i++) admitted(p.evaluate(ctx()));
  queued(p, ctx('sheddable'));
  queued(p, ctx('standard'));
  refusal(sync(p.evaluate(ctx('sheddable'))), 'queue_full');
  // Standard and critical still queue up to the full size.
  queued(p, ctx('standard'));
  queued(p, ctx('critical'));
});

test('a full queue refuses its newest sheddable waiter to make room for a standard or critical arrival', async () => {
  const { p } = harness({ max_concurrent_requests_per_instance: 4 });
  for (let i = 0; i < 4; i++) admitted(p.evaluate(ctx()));
  const oldShed = queued(p, ctx('sheddable'));
  const newShed = queued(p, ctx('sheddable'));
  const s1 = queued(p);
  const s2 = queued(p);
  // Full (4 of 4): a standard arrival takes the newest sheddable's place.
  const s3 = queued(p);
  await flush();
  refusal(newShed.settled, 'queue_full');
  assert.equal(oldShed.settled, undefined);
  // A critical arrival takes the remaining sheddable's place.
  const c1 = queued(p, ctx('critical'));
  await flush();
  refusal(oldShed.settled, 'queue_full');
  // No sheddable left: a standard arrival is refused, a critical one displaces the newest standard.
  refusal(sync(p.evaluate(ctx('standard'))), 'queue_full');
  const c2 = queued(p, ctx('critical'));
  await flush();
  refusal(s3.settled, 'queue_full');
  for (const q of [s1, s2, c1, c2]) assert.equal(q.settled, undefined);
  // A critical arrival with only critical waiters is refused too.
  const { p: p2 } = harness({ max_concurrent_requests_per_instance: 1 });
  admitted(p2.evaluate(ctx()));
  queued(p2, ctx('critical'));
  refusal(sync(p2.evaluate(ctx('critical'))), 'queue_full');
});

test('a waiter past max_queue_wait_ms gets 429 queue_timeout and leaves the queue', async () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 200 });
  const done = admitted(p.evaluate(ctx()));
  const q = queued(p);
  deps.manual.advance(190);
  deps.timers.tick();
  await flush();
  assert.equal(q.settled, undefined, 'still waiting before the deadline');
  deps.manual.advance(20);
  deps.timers.tick();
  await flush();
  refusal(q.settled, 'queue_timeout');
  assert.deepEqual(load(deps), { inFlight: 1, queued: 0 });
  done(OUTCOME);
  assert.deepEqual(load(deps), { inFlight: 0, queued: 0 }, 'the timed-out waiter took no permit');
});

test('max_queue_wait_ms 0: no queue, the excess is refused at once', () => {
  const { p } = harness({ max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 0 });
  admitted(p.evaluate(ctx()));
  const v = p.evaluate(ctx('critical'));
  assert.ok(!(v instanceof Promise));
  refusal(v, 'queue_full');
});

test('a waiter whose client goes away leaves the queue at once and never takes a permit', async () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 2 });
  const done = admitted(p.evaluate(ctx()));
  admitted(p.evaluate(ctx()));
  const gone = queued(p);
  const next = queued(p);
  gone.ctx.controller.abort();
  assert.deepEqual(load(deps), { inFlight: 2, queued: 1 }, 'left synchronously on abort');
  await flush();
  assert.ok(gone.settled && gone.settled.kind === 'reject', 'its promise settles with a reject');
  assert.equal(gone.settled.reason, undefined, 'not counted as a throttle: nothing is sent');
  done(OUTCOME);
  await flush();
  grantedDone(next);
  assert.deepEqual(load(deps), { inFlight: 2, queued: 0 });
  // Already gone when it would queue: not queued at all.
  const c = ctx();
  c.controller.abort();
  const v = p.evaluate(c);
  assert.ok(!(v instanceof Promise) && v.kind === 'reject');
  assert.deepEqual(load(deps), { inFlight: 2, queued: 0 });
});

test('a granted waiter returns its permit exactly once, also if its client leaves before onDone is registered', async () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 1 });
  const done = admitted(p.evaluate(ctx()));
  const q = queued(p);
  done(OUTCOME);
  await flush();
  const onDone = grantedDone(q);
  q.ctx.controller.abort();
  assert.deepEqual(load(deps), { inFlight: 0, queued: 0 });
  onDone(OUTCOME);
  assert.deepEqual(load(deps), { inFlight: 0, queued: 0 }, 'not released twice');
});

test('the limit follows the ready count: more instances admit waiters, none lets everything through', async () => {
  const { p, deps, ready } = harness({ max_concurrent_requests_per_instance: 2 });
  admitted(p.evaluate(ctx()));
  admitted(p.evaluate(ctx()));
  const a = queued(p);
  const b = queued(p);
  // A second instance comes up: the poll notices without any request ending.
  ready.n = 2;
  deps.manual.advance(10);
  deps.timers.tick();
  await flush();
  grantedDone(a);
  grantedDone(b);
  assert.deepEqual(load(deps), { inFlight: 4, queued: 0 });
  // And arrivals see the larger limit too... until it is reached.
  queued(p);
  // Back to one: nobody is evicted, arrivals queue (the queue is 2 for limit 2).
  ready.n = 1;
  queued(p);
  refusal(sync(p.evaluate(ctx())), 'queue_full');
  // No ready instance: the limiter steps aside, waiters go (the forward answers 503).
  ready.n = 0;
  admitted(p.evaluate(ctx()));
  await flush();
  assert.deepEqual(load(deps), { inFlight: 7, queued: 0 });
});

test('the limit is this worker\'s share: per instance × ready ÷ workers, rounded up, at least 1', () => {
  const { p, ready } = harness({ max_concurrent_requests_per_instance: 3 }, { workers: 2 });
  const l = p as DeploymentLimiter;
  assert.equal(l.limitFor(1), 2);
  assert.equal(l.limitFor(3), 5);
  admitted(p.evaluate(ctx()));
  admitted(p.evaluate(ctx()));
  queued(p);
  ready.n = 3;
  // Limit 5: the waiter goes first, then two more, then the sixth queues.
  for (let i = 0; i < 2; i++) admitted(p.evaluate(ctx()));
  queued(p);
  const { p: one } = harness({ max_concurrent_requests_per_instance: 1 }, { workers: 4 });
  assert.equal((one as DeploymentLimiter).limitFor(1), 1);
  admitted(one.evaluate(ctx()));
  queued(one);
});

test('a recompile keeps the in-flight count and the queue, and applies changed settings in place', async () => {
  const ready = { n: 1 };
  const deps = fakeDeps({ health: { readyInstances: () => ready.n } });
  const p1 = concurrencyFactory.create(scope({ max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 1000 }), deps)!;
  const oldDone = admitted(p1.evaluate(ctx()));
  const waiting = queued(p1);
  // Same settings: same state.
  const p2 = concurrencyFactory.create(scope({ max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 1000 }), deps)!;
  assert.equal(p2, p1);
  assert.ok(deps.state.size === 1);
  deps.state.get(limiterKey('cars', 'blue'), () => assert.fail('the key is the deployment'));
  // A larger limit admits the waiter at once; a longer wait changes Retry-After.
  const p3 = concurrencyFactory.create(scope({ max_concurrent_requests_per_instance: 2, max_queue_wait_ms: 4000 }), deps)!;
  await flush();
  grantedDone(waiting);
  assert.deepEqual(load(deps), { inFlight: 2, queued: 0 });
  queued(p3);
  queued(p3);
  refusal(sync(p3.evaluate(ctx())), 'queue_full', '4');
  // The old snapshot's request returns its permit to the same limiter.
  oldDone(OUTCOME);
  await flush();
  assert.deepEqual(load(deps), { inFlight: 2, queued: 1 });
});

test('gauges report in-flight and queued per deployment, read at scrape time', async () => {
  const { p, deps } = harness({ max_concurrent_requests_per_instance: 1, max_queue_wait_ms: 50 });
  const read = deps.gauges.loads.get('cars/blue');
  assert.ok(read, 'registered under endpoint/deployment');
  assert.deepEqual(read(), { inFlight: 0, queued: 0 });
  const done = admitted(p.evaluate(ctx()));
  queued(p);
  assert.deepEqual(read(), { inFlight: 1, queued: 1 });
  deps.manual.advance(60);
  deps.timers.tick();
  done(OUTCOME);
  await flush();
  assert.deepEqual(read(), { inFlight: 0, queued: 0 });
});
