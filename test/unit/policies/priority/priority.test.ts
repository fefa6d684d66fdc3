import assert from 'node:assert/strict';
import { test } from 'node:test';
import { priorityFactory } from '../../../../policies/priority/priority.ts';
import type { Policy } from '../../../../policies/policy.ts';
import type { Principal } from '../../../../policies/principal.ts';
import { FakeContext, fakeDeps, scopeOf } from '../../../helpers/policy.ts';

const doc = (priority?: Record<string, unknown>): Record<string, unknown> => ({
  endpoints: { cars: { keys: { primary: 'k-priority-1' }, deployments: { blue: { instances: ['http://127.0.0.1:1'] } }, ...(priority ? { priority } : {}) } },
});

function classOf(p: Policy, principal?: Principal, headers: Record<string, string> = {}): string {
  const ctx = new FakeContext({ principal, headers });
  const v = p.evaluate(ctx);
  assert.ok(!(v instanceof Promise) && v.kind === 'continue', 'priority never rejects and is synchronous');
  return ctx.priority;
}

const key = (slot: string): Principal => ({ type: 'key', id: slot });
const token = (oid: string, roles: string[]): Principal => ({ type: 'aad_token', id: oid, roles });

test('compile: no priority section, no policy (every request is standard)', () => {
  assert.equal(priorityFactory.create(scopeOf(doc()), fakeDeps()), undefined);
  assert.equal(new FakeContext().priority, 'standard');
});

test('the caller mapping names a key slot, a token oid or a token role; the highest match wins', () => {
  const p = priorityFactory.create(scopeOf(doc({ callers: { secondary: 'sheddable', 'oid-9': 'critical', Batch: 'sheddable', Live: 'critical' } })), fakeDeps())!;
  assert.equal(classOf(p, key('primary')), 'standard');
  assert.equal(classOf(p, key('secondary')), 'sheddable');
  assert.equal(classOf(p, token('oid-9', [])), 'critical');
  assert.equal(classOf(p, token('oid-1', ['Batch'])), 'sheddable');
  assert.equal(classOf(p, token('oid-1', ['Batch', 'Live'])), 'critical');
  assert.equal(classOf(p, undefined), 'standard');
});

test('the default class applies to callers the mapping does not name', () => {
  const p = priorityFactory.create(scopeOf(doc({ default: 'sheddable', callers: { primary: 'critical' } })), fakeDeps())!;
  assert.equal(classOf(p, key('secondary')), 'sheddable');
  assert.equal(classOf(p, key('primary')), 'critical');
});

test('the header may lower a class but never raise it (a client cannot make itself critical)', () => {
  const p = priorityFactory.create(scopeOf(doc({ callers: { primary: 'critical' } })), fakeDeps())!;
  assert.equal(classOf(p, key('secondary'), { 'x-priority': 'critical' }), 'standard');
  assert.equal(classOf(p, key('secondary'), { 'x-priority': 'Sheddable' }), 'sheddable');
  assert.equal(classOf(p, key('primary'), { 'x-priority': 'standard' }), 'standard');
  assert.equal(classOf(p, key('primary'), { 'x-priority': 'urgent!' }), 'critical', 'an unknown value is ignored');
});

test('the header name is the endpoint\'s own', () => {
  const p = priorityFactory.create(scopeOf(doc({ header: 'X-Class' })), fakeDeps())!;
  assert.equal(classOf(p, key('primary'), { 'x-class': 'sheddable' }), 'sheddable');
  assert.equal(classOf(p, key('primary'), { 'x-priority': 'sheddable' }), 'standard');
});
