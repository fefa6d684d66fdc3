import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CallerCells, CallerPartitions, callerKey } from '../../../../policies/rate-limit/caller-cells.ts';
import { Gcra } from '../../../../policies/rate-limit/gcra.ts';
import { FakeContext } from '../../../helpers/policy.ts';

test('a new caller gets a full bucket; a known one gets its own back', () => {
  const cells = new CallerCells(10);
  const a = cells.cell('a', 1000);
  assert.equal(a.tat, 1000);
  a.tat = 5000;
  assert.equal(cells.cell('a', 1000), a);
  assert.equal(cells.size, 1);
});

test('at the cap, full buckets go first: dropping them changes no decision', () => {
  const cells = new CallerCells(4);
  const g = new Gcra(1, 2);
  for (const id of ['busy', 'idle1', 'idle2', 'idle3']) g.take(cells.cell(id, 0), 0);
  g.take(cells.cell('busy', 0), 0); // busy: empty until t=2000
  // At t=1500 the idle ones (one token taken at 0) are full again, busy is not.
  cells.cell('new', 1500);
  assert.equal(cells.size, 2);
  assert.ok(cells.has('busy') && cells.has('new'));
  assert.equal(cells.cell('busy', 1500).tat, 2000, 'busy keeps its debt');
});

test('at the cap with no full bucket, the oldest go until a tenth is free', () => {
  const cells = new CallerCells(20);
  const g = new Gcra(1, 5);
  for (let i = 0; i < 20; i++) g.take(cells.cell(`c${i}`, 0), 0);
  cells.cell('late', 0);
  assert.equal(cells.size, 19, '18 kept + the new one');
  assert.ok(!cells.has('c0') && !cells.has('c1') && cells.has('c2') && cells.has('late'));
  // The next 1 new callers fit without another sweep.
  cells.cell('later', 0);
  assert.equal(cells.size, 20);
});

test('partitions: key slots, token subjects, admin keys and client IPs never share a bucket', () => {
  const parts = new CallerPartitions(10);
  const cells = [
    parts.cell(new FakeContext({ principal: { type: 'key', id: 'x' } }), 0),
    parts.cell(new FakeContext({ principal: { type: 'aad_token', id: 'x' } }), 0),
    parts.cell(new FakeContext({ principal: { type: 'admin_key', id: 'x' } }), 0),
    parts.cell(new FakeContext({ clientIp: 'x' }), 0),
  ];
  assert.equal(new Set(cells).size, 4);
  assert.equal(parts.cell(new FakeContext({ principal: { type: 'key', id: 'x' }, clientIp: 'y' }), 0), cells[0]);
});

test('callerKey names the caller for the shared store', () => {
  assert.equal(callerKey(new FakeContext({ principal: { type: 'key', id: 'primary' } })), 'key:primary');
  assert.equal(callerKey(new FakeContext({ principal: { type: 'aad_token', id: 'oid-1' } })), 'aad_token:oid-1');
  assert.equal(callerKey(new FakeContext({ clientIp: '10.1.2.3' })), 'ip:10.1.2.3');
});
