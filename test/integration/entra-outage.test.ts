import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { generateSigningKey, startStandInEntra, TENANT, AUDIENCE, type StandInEntra } from '../helpers/entra.ts';
import { bearer, call, type Reply } from '../helpers/http.ts';
import { manualClock } from '../helpers/clock.ts';

// A hanging identity provider seen from outside (issue 7, item 6): `entra.fetch_timeout_ms`
// bounds the one request that waits for a fetch; while the provider fails, everyone else
// gets 401 with the retry time at once (never 5xx); cached keys keep serving. The stand-in
// accepts connections and never answers; the gateway's clock is manual, so the retry time
// passes without sleeping. The tests run in order and share one outage.
const FETCH_TIMEOUT_MS = 500;
/** Failing fast means well under the deadline (loose, for loaded machines). */
const FAST_MS = FETCH_TIMEOUT_MS / 2;
const clock = manualClock();
let entra: StandInEntra;
let model: TestUpstream;
let gw: TestGateway;

const ready = (async () => {
  entra = await startStandInEntra({ now: clock.now });
  model = await startUpstream('blue');
  gw = await startGateway({
    entra: { authority: entra.authority, tenants: [TENANT], audiences: [AUDIENCE], fetch_timeout_ms: FETCH_TIMEOUT_MS },
    endpoints: {
      tok: { auth_mode: 'aad_token', roles: ['Scorer'], traffic: { blue: 100 }, deployments: { blue: { instances: [model.url] } } },
    },
  }, { clock: clock.now });
})();

after(async () => {
  await gw?.close();
  await model?.close();
  await entra?.close();
});

async function score(token: string): Promise<{ reply: Reply; ms: number }> {
  const start = performance.now();
  const reply = await call(`${gw.url}/endpoints/tok/score`, { body: '{}', headers: bearer(token) });
  return { reply, ms: performance.now() - start };
}

function assertUnavailable(reply: Reply, retry: RegExp): void {
  assert.equal(reply.status, 401, reply.body);
  assert.match(reply.json<{ error: { message: string } }>().error.message, /identity provider is unavailable/);
  assert.match(String(reply.headers['www-authenticate']), /error="invalid_token", error_description="The identity provider is unavailable/);
  assert.match(reply.body, retry);
}

const tokens: string[] = [];

test('hanging provider at cold start: 401 after about fetch_timeout_ms, with the retry time', async () => {
  await ready;
  entra.setMode('hang');
  for (let i = 0; i < 10; i++) tokens.push(await entra.sign({ roles: ['Scorer'], oid: `caller-${i}` }));
  const { reply, ms } = await score(tokens[0]!);
  assertUnavailable(reply, /retrying in 5 s/);
  assert.ok(ms >= FETCH_TIMEOUT_MS - 20 && ms < FETCH_TIMEOUT_MS + 1_500, `answered after ${Math.round(ms)} ms`);
  assert.equal(entra.discoveryRequests, 1);
  assert.equal(model.seen.length, 0);
});

test('while it fails: concurrent and following requests fail fast, no new fetch until the retry time, then one', async () => {
  await ready;
  const burst = await Promise.all(tokens.map((t) => score(t)));
  for (const { reply, ms } of burst) {
    assertUnavailable(reply, /retrying in 5 s/);
    assert.ok(ms < FAST_MS, `failed fast? ${Math.round(ms)} ms`);
  }
  clock.advance(3_000);
  assertUnavailable((await score(tokens[1]!)).reply, /retrying in 2 s/);
  assert.equal(entra.discoveryRequests, 1, 'no fetch before the retry time');

  clock.advance(2_000);
  const all = await Promise.all(tokens.map((t) => score(t)));
  for (const { reply } of all) assertUnavailable(reply, /retrying/);
  assert.equal(all.filter(({ ms }) => ms >= FAST_MS).length <= 1, true, 'at most one request waited for the probe');
  assert.equal(entra.discoveryRequests, 2, 'exactly one fetch at the retry time');
  assert.equal(gw.logs.access().filter((l) => typeof l.status === 'number' && l.status >= 500).length, 0, 'never 5xx');
  for (const t of tokens) assert.ok(!gw.logs.raw.some((l) => l.includes(t.split('.')[2]!)), 'token never logged');
});

test('the provider recovers: from the retry time on, tokens verify again', async () => {
  await ready;
  entra.setMode('up');
  // Not asked again before the retry time, so the outage still shows for those seconds.
  clock.advance(4_000);
  assertUnavailable((await score(tokens[0]!)).reply, /retrying in 1 s/);
  assert.equal(entra.discoveryRequests, 2);
  clock.advance(1_000);
  const { reply } = await score(tokens[0]!);
  assert.equal(reply.status, 200, reply.body);
  assert.equal(entra.jwksRequests, 1);
});

test('hanging again with the keys cached: known keys serve at once, the refresh gives up at the deadline', async () => {
  await ready;
  entra.setMode('hang');
  clock.advance(25 * 60 * 60 * 1000); // discovery and key set stale: refreshes start behind the requests
  const fresh = await Promise.all(Array.from({ length: 10 }, (_, i) => entra.sign({ roles: ['Scorer'], oid: `later-${i}` })));
  const served = await Promise.all(fresh.map((t) => score(t)));
  for (const { reply, ms } of served) {
    assert.equal(reply.status, 200, reply.body);
    assert.ok(ms < FAST_MS, `served from the cached keys? ${Math.round(ms)} ms`);
  }
  // A key that is not published yet (an unknown kid) needs the key set refreshed: the
  // provider is not known to fail yet, so these share the refresh in flight, bounded by
  // the deadline (not 5 s).
  const unpublished = generateSigningKey('RSA', 'not-yet-published');
  const unknown = await Promise.all(Array.from({ length: 5 }, async () => score(await entra.sign({ roles: ['Scorer'] }, { key: unpublished }))));
  for (const { reply, ms } of unknown) {
    assert.equal(reply.status, 401, reply.body);
    assert.match(reply.body, /unknown key/);
    assert.ok(ms < FETCH_TIMEOUT_MS + 1_500, `${Math.round(ms)} ms`);
  }
  assert.equal(entra.jwksRequests, 2, 'one key-set refresh');
  // The hanging background refreshes give up at fetch_timeout_ms and say so (no token in it).
  const deadline = performance.now() + FETCH_TIMEOUT_MS + 1_500;
  const timedOut = (): number => gw.logs.lines.filter((l) => l.err === `no answer within ${FETCH_TIMEOUT_MS} ms`).length;
  while (timedOut() < 4 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(timedOut(), 4, 'two cold-start discovery attempts, then the discovery and JWKS refreshes');
  assert.ok(!gw.logs.raw.some((l) => fresh.some((t) => l.includes(t.split('.')[2]!))), 'token never logged');
});
