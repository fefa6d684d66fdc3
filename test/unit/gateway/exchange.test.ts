import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { Exchange } from '../../../gateway/exchange.ts';
import type { Snapshot } from '../../../gateway/snapshot/compile.ts';

/** One real request/response pair, handed to `use` (the exchange needs a socket and a response). */
async function withExchange(use: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<void> {
  let done!: Promise<void>;
  const server = createServer((req, res) => { done = use(req, res); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => {
    request({ port, host: '127.0.0.1', path: '/' }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject).end();
  });
  await done;
  server.close();
}

const SNAPSHOT = { trustedProxies: undefined } as unknown as Snapshot;

test('after-hooks run once, in reverse order of registration, and one that throws does not stop the others', async () => {
  await withExchange(async (req, res) => {
    const ex = new Exchange(req, res, 'public', SNAPSHOT, false);
    const ran: string[] = [];
    const errors: unknown[] = [];
    ex.after(() => ran.push('first'));
    ex.after(() => ran.push('second'));
    ex.after(() => { ran.push('third'); throw new Error('boom'); });
    ex.after(() => ran.push('fourth'));
    res.end('ok');
    await new Promise((r) => res.once('finish', r));
    const outcome = ex.close(false, (err) => errors.push(err));
    assert.equal(outcome.status, 200);
    assert.deepEqual(ran, ['fourth', 'third', 'second', 'first']);
    assert.equal(errors.length, 1);
    ex.close(false);
    assert.equal(ran.length, 4, 'never twice');
  });
});

test('a single after-hook runs too (the common case: the concurrency permit)', async () => {
  await withExchange(async (req, res) => {
    const ex = new Exchange(req, res, 'public', SNAPSHOT, false);
    let n = 0;
    ex.after(() => n++);
    res.end('ok');
    await new Promise((r) => res.once('finish', r));
    ex.close(false);
    ex.close(false);
    assert.equal(n, 1);
  });
});
