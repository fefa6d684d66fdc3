import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { startRedis } from '../../helpers/redis.ts';

// The helper the shared-state issues build on: a real redis-server of the test's own.
test('startRedis gives a real, empty Redis that answers, and stops it', async () => {
  const r = await startRedis();
  const c = new Redis(r.url);
  try {
    assert.equal(await c.dbsize(), 0);
    await c.set('switchyard:test', '1');
    assert.equal(await c.get('switchyard:test'), '1');
  } finally {
    c.disconnect();
    await r.stop();
  }
});
