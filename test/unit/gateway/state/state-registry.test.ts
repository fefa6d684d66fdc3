import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveStateRegistry } from '../../../../gateway/state/state-registry.ts';

test('get creates once per key and returns the same value after', () => {
  const r = new LiveStateRegistry();
  let made = 0;
  const a = r.get('k', () => ({ n: ++made }));
  const b = r.get('k', () => ({ n: ++made }));
  assert.equal(a, b);
  assert.equal(made, 1);
});

test('retain keeps what the last compile asked for and disposes the rest', () => {
  const r = new LiveStateRegistry();
  const disposed: string[] = [];
  const value = (name: string): { dispose(): void } => ({ dispose: () => disposed.push(name) });
  r.begin();
  r.get('bucket:a', () => value('a'));
  r.get('bucket:b', () => value('b'));
  const first = r.begin();
  const kept = r.get('bucket:a', () => value('a2'));
  r.get('bucket:c', () => value('c'));
  r.retain(first);
  assert.deepEqual(disposed, ['b']);
  assert.equal(r.size, 2);
  assert.equal(r.get('bucket:a', () => value('a3')), kept, 'state survives the swap');
});
