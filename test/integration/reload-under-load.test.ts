import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { setTimeout as delay } from 'node:timers/promises';
import { config, startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { startStandInEntra, TENANT, AUDIENCE, type StandInEntra } from '../helpers/entra.ts';
import { InstanceRegistry } from '../../gateway/upstream/instance.ts';

// Swapping which instances a deployment uses, while requests are on their way, must lose
// none: a request that read the old snapshot may still be verifying its token (an async
// signature check) when the swap retires the instance it will be sent to.
let entra: StandInEntra;
let a: TestUpstream;
let b: TestUpstream;
let gw: TestGateway;
const doc = (instance: string) => ({
  entra: { authority: entra.authority, tenants: [TENANT], audiences: [AUDIENCE] },
  endpoints: { cars: { auth_mode: 'aad_token', traffic: { blue: 100 }, deployments: { blue: { instances: [instance] } } } },
});
const ready = (async () => {
  entra = await startStandInEntra();
  a = await startUpstream('a');
  b = await startUpstream('b');
  gw = await startGateway(doc(a.url));
})();
after(async () => {
  await gw?.close();
  await a?.close();
  await b?.close();
  await entra?.close();
});

test('no request fails while config swaps move a deployment between instances', async () => {
  await ready;
  const agent = new Agent({ connections: 16 });
  // Fresh tokens, so every request takes the async verification path.
  const tokens = await Promise.all(Array.from({ length: 200 }, (_, i) => entra.sign({ oid: `caller-${i}` })));
  let swaps = 0;
  let stop = false;
  const swapper = (async () => {
    while (!stop) {
      gw.gw.apply(config(doc(swaps % 2 ? a.url : b.url)));
      swaps++;
      await delay(1);
    }
  })();
  const statuses = await Promise.all(tokens.map(async (t) => {
    const r = await request(`${gw.url}/endpoints/cars/score`, {
      method: 'POST', body: '{}', headers: { authorization: `Bearer ${t}` }, dispatcher: agent,
    });
    await r.body.dump();
    return r.statusCode;
  }));
  stop = true;
  await swapper;
  await agent.close();
  assert.ok(swaps > 5, `the config changed during the run (${swaps} swaps)`);
  assert.deepEqual(statuses.filter((s) => s !== 200), [], 'every request answered 200');
  assert.ok(a.seen.length > 0 && b.seen.length > 0, 'both instances served');
});

test('a dropped instance comes back as the same instance within the grace period', () => {
  const reg = new InstanceRegistry(60_000);
  const first = reg.acquire('http://127.0.0.1:1');
  reg.retain(new Set());
  assert.equal([...reg.all()].length, 0);
  const again = reg.acquire('http://127.0.0.1:1');
  assert.equal(again, first);
  assert.equal(again.pool.closed, false);
  return reg.close();
});
