import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { AccessLog } from '../../../gateway/access-log.ts';
import type { Exchange } from '../../../gateway/exchange.ts';
import type { Outcome } from '../../../policies/policy.ts';
import { LogCapture } from '../../helpers/gateway.ts';

// The access line is written without pino's serializer; it must be the line pino writes.

function fakeExchange(url: string, callerId = 'primary'): Exchange {
  return {
    req: { url, method: 'POST' }, requestId: '0f0e0d0c-0b0a-4908-8706-050403020100', endpoint: 'cars', deployment: 'blue',
    principal: { type: 'key', id: callerId }, clientIp: '10.1.2.3', error: undefined, throttle: undefined,
  } as unknown as Exchange;
}
const outcome: Outcome = { status: 200, error: undefined, termination: 'completed', connectFailed: false, instance: undefined, durationMs: 1.23456 };

test('the line is byte for byte what pino writes for the same fields', () => {
  for (const base of [{ service: 'switchyard' }, undefined]) {
    const ours = new LogCapture();
    const theirs = new LogCapture();
    new AccessLog(pino({ level: 'info', ...(base ? { base } : {}) }, ours)).write(fakeExchange('/endpoints/cars/score?x=1'), outcome);
    pino({ level: 'info', ...(base ? { base } : {}) }, theirs).info({
      request_id: '0f0e0d0c-0b0a-4908-8706-050403020100', method: 'POST', path: '/endpoints/cars/score', endpoint: 'cars', deployment: 'blue',
      status: 200, duration_ms: 1.235, auth: 'key', caller: 'primary', client_ip: '10.1.2.3', termination: 'completed',
    }, 'request');
    const strip = (l: string): string => l.replace(/"time":\d+/, '"time":0');
    assert.equal(strip(ours.raw[0]!), strip(theirs.raw[0]!));
  }
});

test('values a client controls are escaped: the line stays one valid JSON object', () => {
  const out = new LogCapture();
  const nasty = '/endpoints/cars/"a\\b\u0001\n\ud800}';
  new AccessLog(pino({ level: 'info' }, out)).write(fakeExchange(nasty, 'oid"\n'), outcome);
  assert.equal(out.raw.length, 1, 'one line');
  assert.equal(out.lines[0]!.path, nasty, 'quotes, backslashes, control characters and a lone surrogate round-trip');
  assert.equal(out.lines[0]!.caller, 'oid"\n');
});

test('a logger above info writes nothing', () => {
  const out = new LogCapture();
  const log = new AccessLog(pino({ level: 'warn' }, out));
  assert.equal(log.enabled, false);
});
