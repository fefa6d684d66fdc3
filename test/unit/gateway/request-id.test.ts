import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RequestIds } from '../../../gateway/request-id.ts';

const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('ids are UUIDv8-shaped and never repeat within a process', () => {
  const ids = new RequestIds();
  const seen = new Set<string>();
  for (let i = 0; i < 100_000; i++) {
    const id = ids.next();
    assert.match(id, UUID_V8);
    seen.add(id);
  }
  assert.equal(seen.size, 100_000);
});

test('two generators (two processes, or a restart) share no id', () => {
  const a = new RequestIds();
  const b = new RequestIds();
  const fromA = new Set(Array.from({ length: 10_000 }, () => a.next()));
  for (let i = 0; i < 10_000; i++) assert.ok(!fromA.has(b.next()));
  assert.notEqual(a.next().slice(0, 23), b.next().slice(0, 23), 'each draws its own random prefix');
});
