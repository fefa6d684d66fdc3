import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ABORTED, breaker, exchange, isOpen, MODEL_500, NOT_FOUND, OK, refusedFor, run, THROTTLED, TIMED_OUT, verdict } from './fixtures.ts';

test('open: 503 CircuitOpen with Retry-After counting down to the half-open, never below 1', async () => {
  const { p, d } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  await run(p, MODEL_500, 2);
  assert.equal(refusedFor(verdict(p)), '30');
  d.manual.advance(12_500);
  assert.equal(refusedFor(verdict(p)), '18', '17.5 s left, rounded up');
  d.manual.advance(17_200);
  assert.equal(refusedFor(verdict(p)), '1', '0.3 s left');
});

test('fractional reset_timeout_s: Retry-After is still at least 1', async () => {
  const { p } = breaker({ volume_threshold: 2, reset_timeout_s: 0.25 });
  await run(p, MODEL_500, 2);
  assert.equal(refusedFor(verdict(p)), '1');
});

test('half-open: after reset_timeout_s exactly one probe goes through; the rest are refused while it runs', async () => {
  const { p, d, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  await run(p, MODEL_500, 2);
  assert.equal(gauge(), 1, 'open');
  d.manual.advance(29_999);
  assert.equal(isOpen(p), true);
  d.manual.advance(1);
  assert.equal(gauge(), 0.5, 'half-open: the next request probes');
  const probe = verdict(p);
  assert.equal(probe.kind, 'continue', 'the probe');
  assert.equal(refusedFor(verdict(p)), '1', 'a second request waits for the probe');
  assert.equal(refusedFor(verdict(p)), '1');
  assert.equal(gauge(), 0.5, 'half-open while probing');
  assert.ok(probe.kind === 'continue' && probe.onDone);
  probe.onDone(OK);
  assert.equal(gauge(), 0, 'closed by the probe');
  assert.equal(verdict(p).kind, 'continue');
});

test('a failed probe re-opens for another reset_timeout_s', async () => {
  const { p, d, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  await run(p, MODEL_500, 2);
  d.manual.advance(30_000);
  assert.equal(exchange(p, TIMED_OUT).kind, 'continue', 'the probe went through and timed out');
  assert.equal(gauge(), 1, 'open again');
  assert.equal(refusedFor(verdict(p)), '30', 'the wait starts over');
  d.manual.advance(29_000);
  assert.equal(refusedFor(verdict(p)), '1');
  d.manual.advance(1_000);
  assert.equal(exchange(p, OK).kind, 'continue', 'the second probe');
  assert.equal(gauge(), 0);
});

test('a probe that tells nothing (client left, or a later policy refused it) frees the slot for the next one', async () => {
  const { p, d, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 0.001 });
  await run(p, MODEL_500, 2);
  assert.equal(gauge(), 1);
  d.manual.advance(1);
  assert.equal(exchange(p, ABORTED).kind, 'continue', 'probe 1: the client left');
  assert.equal(exchange(p, THROTTLED).kind, 'continue', 'probe 2: refused by the concurrency limit');
  assert.equal(gauge(), 0.5, 'still half-open');
  assert.equal(exchange(p, NOT_FOUND).kind, 'continue', 'probe 3: the model answered (a 404 is an answer)');
  assert.equal(gauge(), 0);
});

test('requests in flight when the breaker opened do not close or re-open it when they end', async () => {
  const { p, gauge } = breaker({ volume_threshold: 2, reset_timeout_s: 30 });
  const inFlight = [verdict(p), verdict(p), verdict(p)];
  await run(p, MODEL_500, 2);
  assert.equal(gauge(), 1);
  for (const v of inFlight) if (v.kind === 'continue') v.onDone?.(OK);
  assert.equal(gauge(), 1, 'still open: only a probe closes it');
});

test('closing empties the window: failures from before the outage do not trip it again', async () => {
  const { p, d } = breaker({ error_threshold_percent: 50, volume_threshold: 4, window_s: 60, reset_timeout_s: 5 });
  await run(p, MODEL_500, 4);
  d.manual.advance(5_000);
  assert.equal(exchange(p, OK).kind, 'continue');
  assert.equal(isOpen(p), false, 'closed');
  await run(p, MODEL_500, 3);
  assert.equal(isOpen(p), false, '3 requests since the close: under the volume threshold');
  await run(p, MODEL_500, 1);
  assert.equal(isOpen(p), true);
});

// ---- logs and gauge -----------------------------------------------------------------------
