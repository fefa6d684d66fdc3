import assert from 'node:assert/strict';
import { test } from 'node:test';
import { judge, type Judgement } from '../../../../policies/circuit-breaker/judge.ts';
import type { Outcome } from '../../../../policies/policy.ts';

const base: Outcome = { status: 200, error: undefined, termination: 'completed', connectFailed: false, instance: 'http://10.0.0.1:5001', durationMs: 3 };

const cases: [string, Partial<Outcome>, Judgement][] = [
  ['the model answered 200', {}, 'success'],
  ['the model answered 404 (the caller\'s mistake)', { status: 404 }, 'success'],
  ['the model answered 429 itself', { status: 429 }, 'success'],
  ['the model answered 500', { status: 500 }, 'failure'],
  ['the model answered 503', { status: 503 }, 'failure'],
  ['connect refused on every instance (502)', { status: 502, error: 'BadGateway', termination: 'upstream_reset', connectFailed: true }, 'failure'],
  ['connection reset before the response (502)', { status: 502, error: 'BadGateway', termination: 'upstream_reset' }, 'failure'],
  ['request_timeout_ms passed (504)', { status: 504, error: 'GatewayTimeout', termination: 'upstream_timeout' }, 'failure'],
  ['a stream cut midway by the instance', { status: 200, termination: 'upstream_reset' }, 'failure'],
  ['a stream that went silent midway', { status: 200, termination: 'upstream_timeout' }, 'failure'],
  ['a refused connect retried on another instance that answered', { connectFailed: true }, 'success'],
  ['the client left (499)', { status: 499, termination: 'client_aborted' }, 'ignore'],
  ['the client left while the instance was failing', { status: 499, termination: 'client_aborted', connectFailed: true }, 'ignore'],
  ['a stalled upload (408)', { status: 408, error: 'RequestTimeout', termination: 'client_bad_request' }, 'ignore'],
  ['refused by the concurrency limit (429)', { status: 429, error: 'TooManyPendingRequests', instance: undefined }, 'ignore'],
  ['refused by a rate limit (429)', { status: 429, error: 'TooManyRequests', instance: undefined }, 'ignore'],
  ['no ready instance (503, health\'s business)', { status: 503, error: 'NoReadyInstance', instance: undefined }, 'ignore'],
  ['the gateway is overloaded (503)', { status: 503, error: 'Overloaded', instance: undefined }, 'ignore'],
  ['the gateway is draining (503)', { status: 503, error: 'Draining', instance: undefined }, 'ignore'],
  ['a gateway bug (500)', { status: 500, error: 'InternalError' }, 'ignore'],
  ['cut at the end of a shutdown', { status: 200, termination: 'shutdown' }, 'ignore'],
];

for (const [name, o, want] of cases) {
  test(`judge: ${name} → ${want}`, () => {
    assert.equal(judge({ ...base, ...o }), want);
  });
}
