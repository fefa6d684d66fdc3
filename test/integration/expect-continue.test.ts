import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';

// Expect: 100-continue (curl sends it for bodies over 1 MiB): the client is invited to
// upload only once the gateway accepts the request.
let gw: TestGateway;
let model: TestUpstream;
const ready = (async () => {
  model = await startUpstream('blue');
  gw = await startGateway({
    server: { max_body_bytes: 1000 },
    endpoints: { cars: { keys: { primary: 'k1' }, traffic: { blue: 100 }, deployments: { blue: { instances: [model.url] } } } },
  });
})();
after(async () => {
  await gw?.close();
  await model?.close();
});

/** Send headers with Expect: 100-continue; upload only if invited. Report what happened. */
function expectContinue(headers: Record<string, string>, body: Buffer): Promise<{ continued: boolean; status: number }> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = request(`${gw.url}/endpoints/cars/score`, {
      method: 'POST',
      headers: { expect: '100-continue', 'content-length': String(body.length), ...headers },
      agent: false,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ continued, status: res.statusCode ?? 0 }));
    });
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

test('a rejected request is answered without inviting the upload', async () => {
  await ready;
  const noKey = await expectContinue({}, Buffer.alloc(500));
  assert.deepEqual(noKey, { continued: false, status: 401 });
  const tooBig = await expectContinue({ authorization: 'Bearer k1' }, Buffer.alloc(5000));
  assert.deepEqual(tooBig, { continued: false, status: 413 });
  assert.equal(model.seen.length, 0);
});

test('an accepted request is invited, uploaded and forwarded', async () => {
  await ready;
  const ok = await expectContinue({ authorization: 'Bearer k1' }, Buffer.alloc(500, 'a'));
  assert.deepEqual(ok, { continued: true, status: 200 });
  assert.equal(model.seen.at(-1)?.body.length, 500);
  assert.equal(model.seen.at(-1)?.headers.expect, undefined, 'the instance is not asked to continue again');
});
