import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadShedFactory } from '../../../../policies/load-shed/load-shed.ts';
import { EventLoopDelay, LOOP_DELAY_KEY } from '../../../../policies/load-shed/loop-delay.ts';
import type { Policy, PriorityClass } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, scopeOf } from '../../../helpers/policy.ts';

const doc = (server: Record<string, unknown> = {}): Record<string, unknown> => ({
  server,
  endpoints: { cars: { keys: { primary: 'k-loadshed-1' }, deployments: { blue: { instances: ['http://127.0.0.1:1'] } } } },
});

/** A policy reading a delay the test sets (put in the registry before the factory asks for the monitor). */
function withDelay(max: number): { policy: Policy; set(ms: number): void } {
  const deps = fakeDeps();
  const reading = { delayMs: 0 };
  deps.state.get(LOOP_DELAY_KEY, () => reading);
  const policy = loadShedFactory.create(scopeOf(doc({ load_shedding: { max_event_loop_delay_ms: max } })), deps)!;
  return { policy, set: (ms) => { reading.delayMs = ms; } };
}

function answer(p: Policy, priority: PriorityClass): string {
  const v = p.evaluate(new FakeContext({ priority }));
  assert.ok(!(v instanceof Promise));
  if (v.kind === 'continue') return 'continue';
  assert.equal(v.reason, 'overloaded');
  return v.error.code;
}

test('compile: without server.load_shedding there is no policy and no monitor', () => {
  const deps = fakeDeps();
  assert.equal(loadShedFactory.create(scopeOf(doc()), deps), undefined);
  assert.equal(deps.state.size, 0);
});

test('under the threshold every class is served', () => {
  const { policy, set } = withDelay(100);
  set(50);
  for (const c of ['critical', 'standard', 'sheddable'] as const) assert.equal(answer(policy, c), 'continue');
});

test('sheddable goes first (past half the threshold), standard past it, critical only past twice it', () => {
  const { policy, set } = withDelay(100);
  set(60);
  assert.deepEqual(['critical', 'standard', 'sheddable'].map((c) => answer(policy, c as PriorityClass)), ['continue', 'continue', 'Overloaded']);
  set(150);
  assert.deepEqual(['critical', 'standard', 'sheddable'].map((c) => answer(policy, c as PriorityClass)), ['continue', 'Overloaded', 'Overloaded']);
  set(250);
  assert.deepEqual(['critical', 'standard', 'sheddable'].map((c) => answer(policy, c as PriorityClass)), ['Overloaded', 'Overloaded', 'Overloaded']);
  set(10);
  assert.equal(answer(policy, 'sheddable'), 'continue', 'recovers as soon as the delay falls');
});

test('the monitor sees a saturated event loop and forgets it one window later', async () => {
  const m = new EventLoopDelay(60_000, 5);
  try {
    // A saturated loop: ten turns in a row each busy for 30 ms.
    await new Promise<void>((resolve) => {
      let n = 0;
      const t = setInterval(() => {
        const until = performance.now() + 30;
        while (performance.now() < until) { /* busy */ }
        if (++n === 10) {
          clearInterval(t);
          resolve();
        }
      }, 1);
    });
    m.sample();
    assert.ok(m.delayMs >= 15, `a busy loop shows (read ${m.delayMs} ms)`);
    await new Promise((r) => setTimeout(r, 50));
    m.sample();
    assert.ok(m.delayMs < 10, `the next window is calm again (read ${m.delayMs} ms)`);
  } finally {
    m.dispose();
  }
});
