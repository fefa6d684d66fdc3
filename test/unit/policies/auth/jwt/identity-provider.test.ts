// The identity provider behind the verifier: key rollover, refetch bounds, discovery, and a
// provider that is down, answers garbage or hangs.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { manualClock } from '../../../../helpers/clock.ts';
import { createEntraVerifier } from '../../../../../policies/auth/jwt/entra-verifier.ts';
import type { EntraVerifier } from '../../../../../policies/auth/jwt/entra-verifier.ts';
import { defaultFetchJson, JwksCacheRegistry } from '../../../../../policies/auth/jwt/jwks-cache.ts';
import type { FetchJson } from '../../../../../policies/auth/jwt/jwks-cache.ts';
import { OidcDiscovery, openIdConfigurationUrl } from '../../../../../policies/auth/jwt/oidc-discovery.ts';
import {
  AUDIENCE, generateSigningKey, OTHER_TENANT, startStandInEntra, TENANT,
} from '../../../../helpers/entra.ts';
import { assertAccepted, assertRejected, HOUR_MS, setup } from '../../../../helpers/entra-verifier.ts';

test('Entra key rollover: an unknown kid is accepted after exactly one refetch', async (t) => {
  const { clock, idp, verifier, keys } = await setup(t);
  assertAccepted(await verifier.verify(await idp.sign()));
  assert.equal(idp.jwksRequests, 1);

  idp.rotate({ dropOld: true });
  const rotated = await idp.sign();
  // Inside the refetch interval the new kid is refused without hitting the provider ...
  assertRejected(await verifier.verify(rotated), 401, /unknown key/);
  assert.equal(idp.jwksRequests, 1);
  // ... and that failure is not cached: once the interval passed, one refetch admits it.
  clock.advance(5_001);
  assertAccepted(await verifier.verify(rotated));
  assert.equal(idp.jwksRequests, 2);
  assert.equal(keys().stats.fetches, 2);
  assertAccepted(await verifier.verify(await idp.sign()));
  assert.equal(idp.jwksRequests, 2);
});

test('100 tokens with random unknown kids fetch the JWKS a bounded number of times', async (t) => {
  const { clock, idp, verifier } = await setup(t);
  const forge = (): Promise<string> => idp.sign({}, { kid: randomUUID() });
  // Cold start storm: everything shares the first fetch.
  const cold = await Promise.all(Array.from({ length: 100 }, async () => verifier.verify(await forge())));
  for (const r of cold) assertRejected(r, 401, /unknown key/);
  assert.equal(idp.jwksRequests, 1);

  clock.advance(10_000);
  const tokens = await Promise.all(Array.from({ length: 100 }, forge));
  const concurrent = await Promise.all(tokens.map((tok) => verifier.verify(tok)));
  for (const r of concurrent) assertRejected(r, 401, /unknown key/);
  for (const tok of tokens) assertRejected(await verifier.verify(tok), 401, /unknown key/);
  assert.ok(idp.jwksRequests <= 2, `JWKS fetched ${idp.jwksRequests} times`);
  assert.equal(idp.jwksRequests, 2);
  assert.equal(idp.discoveryRequests, 1);
});

test('provider down or answering garbage: the last good keys keep verifying', async (t) => {
  const { clock, idp, verifier, keys, warnings } = await setup(t);
  assertAccepted(await verifier.verify(await idp.sign()));
  for (const mode of ['down', 'reset', 'garbage'] as const) {
    idp.setMode(mode);
    const before = idp.jwksRequests;
    clock.advance(HOUR_MS + 1);
    assertAccepted(await verifier.verify(await idp.sign()));
    await keys().idle();
    assert.equal(idp.jwksRequests, before + 1, `${mode}: one refresh attempt`);
    assert.equal(keys().size, 2, `${mode}: keys kept`);
    // An unknown kid during the outage is refused, but the known keys survive it.
    clock.advance(5_001);
    assertRejected(await verifier.verify(await idp.sign({}, { kid: 'nope' })), 401, /unknown key/);
    assertAccepted(await verifier.verify(await idp.sign()));
  }
  assert.equal(keys().stats.failures, 6);
  // A day later (discovery stale too) the last good set is still used, and it is logged.
  idp.setDown(true);
  clock.advance(25 * HOUR_MS);
  assertAccepted(await verifier.verify(await idp.sign()));
  await keys().idle();
  assert.ok(warnings.some((w) => /older than 24 h/.test(w)), warnings.join('; '));
});

test('cold start with the provider down is 401 and retried only after the refetch interval', async (t) => {
  const { clock, idp, verifier } = await setup(t);
  idp.setDown(true);
  assertRejected(await verifier.verify(await idp.sign()), 401, /unavailable/);
  assertRejected(await verifier.verify(await idp.sign()), 401, /unavailable/);
  assert.equal(idp.discoveryRequests, 1);
  idp.setDown(false);
  clock.advance(5_001);
  assertAccepted(await verifier.verify(await idp.sign()));
  assert.equal(idp.discoveryRequests, 2);
  assert.equal(idp.jwksRequests, 1);
});

test('cold start is single-flight for discovery and JWKS', async (t) => {
  const { idp, verifier } = await setup(t);
  const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => idp.sign({ oid: `caller-${i}` })));
  const results = await Promise.all(tokens.map((tok) => verifier.verify(tok)));
  for (const r of results) assertAccepted(r);
  assert.equal(idp.discoveryRequests, 1);
  assert.equal(idp.jwksRequests, 1);
});

test('background refresh: a stale set answers at once and is refetched once', { timeout: 5_000 }, async (t) => {
  const gate = Promise.withResolvers<void>();
  let gating = false;
  let gatedCalls = 0;
  const fetchJson: FetchJson = async (url, signal) => {
    if (gating && url.endsWith('/keys')) {
      gatedCalls += 1;
      await gate.promise;
    }
    return defaultFetchJson(url, signal);
  };
  const { clock, idp, verifier, keys } = await setup(t, { fetchJson });
  assertAccepted(await verifier.verify(await idp.sign()));
  assert.equal(idp.jwksRequests, 1);

  clock.advance(HOUR_MS + 1);
  gating = true;
  // The refresh is parked on the gate; if verify awaited it, this would never resolve.
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => verifier.verify(await idp.sign({ oid: `c${i}` }))));
  for (const r of results) assertAccepted(r);
  assert.equal(gatedCalls, 1, 'one refresh started');
  assert.equal(idp.jwksRequests, 1, 'and still parked');

  gate.resolve();
  await keys().idle();
  assert.equal(idp.jwksRequests, 2);
  assertAccepted(await verifier.verify(await idp.sign({ oid: 'after' })));
  assert.equal(idp.jwksRequests, 2, 'fresh again: no further fetch');
  assert.equal(keys().stats.fetches, 2);
});

test('discovery builds the Entra URL, shares one fetch and keeps the last good document', async (t) => {
  const clock = manualClock();
  const idp = await startStandInEntra({ now: clock.now });
  t.after(() => idp.close());
  assert.equal(
    openIdConfigurationUrl('https://login.microsoftonline.com/', TENANT),
    `https://login.microsoftonline.com/${TENANT}/v2.0/.well-known/openid-configuration`,
  );
  const discovery = new OidcDiscovery({ now: clock.now });
  const uris = await Promise.all(Array.from({ length: 5 }, () => discovery.jwksUri(idp.authority, TENANT)));
  assert.deepEqual(new Set(uris), new Set([idp.jwksUri]));
  assert.equal(idp.discoveryRequests, 1);
  idp.setMode('garbage');
  clock.advance(25 * HOUR_MS);
  assert.equal(await discovery.jwksUri(idp.authority, TENANT), idp.jwksUri);
  await discovery.idle();
  assert.equal(await discovery.jwksUri(idp.authority, TENANT), idp.jwksUri);
  await discovery.idle();
  assert.equal(idp.discoveryRequests, 2, 'one background refresh, then rate-limited');
  assert.equal(discovery.stats.failures, 1);
});

test('one JWKS cache per URI across verifiers of different tenants', async (t) => {
  const clock = manualClock();
  const idp = await startStandInEntra({ now: clock.now });
  t.after(() => idp.close());
  const jwks = new JwksCacheRegistry({ now: clock.now });
  const make = (tenant: string): EntraVerifier => createEntraVerifier({
    authority: idp.authority, tenants: [tenant], audiences: [AUDIENCE], clockSkewS: 60, now: clock.now, jwks,
  });
  assertAccepted(await make(TENANT).verify(await idp.sign()));
  assertAccepted(await make(OTHER_TENANT).verify(await idp.sign({ tid: OTHER_TENANT })));
  assert.equal(idp.jwksRequests, 1);
  assert.equal(jwks.get(idp.jwksUri), jwks.get(idp.jwksUri));
});

// ---- A hanging or failing identity provider (issue 7, item 6) ----
// The stand-in accepts the connection and never answers. The fetch deadline needs a real
// timer, so it is short here; the retry time runs on the manual clock, so nothing sleeps
// for seconds. Durations are asserted loosely: "about the deadline" and "well under it".

/** Run `fn` and measure it in real milliseconds. */
async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await fn();
  return { value, ms: performance.now() - start };
}

const DEADLINE_MS = 150;
/** Failing fast means well under the deadline of the test (loose, for loaded machines). */
const FAST_MS = 150;

test('hanging provider, cold start: the first token gets 401 after about fetch_timeout_ms, not 5 s', { timeout: 10_000 }, async (t) => {
  for (const which of ['discovery', 'jwks'] as const) {
    const { idp, verifier, warnings } = await setup(t, { fetchTimeoutMs: DEADLINE_MS });
    idp.setMode('hang', which);
    const token = await idp.sign();
    const { value: r, ms } = await timed(() => verifier.verify(token));
    assertRejected(r, 401, /^The identity provider is unavailable \(retrying in 5 s\)\.$/);
    assert.ok(ms >= DEADLINE_MS - 20 && ms < DEADLINE_MS + 1_000, `${which}: answered after ${Math.round(ms)} ms`);
    assert.equal(which === 'jwks' ? idp.jwksRequests : idp.discoveryRequests, 1, which);
    // (setup gives only the key-set cache a logger)
    if (which === 'jwks') assert.ok(warnings.some((w) => /JWKS fetch failed/.test(w)), warnings.join('; '));
  }
});

test('failing provider: one fetch per retry time, one request waits for it, the rest fail fast with when', { timeout: 10_000 }, async (t) => {
  const { clock, idp, verifier } = await setup(t, { fetchTimeoutMs: 400 });
  idp.setMode('hang');
  const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => idp.sign({ oid: `caller-${i}` })));
  const first = tokens[0];
  assert.ok(first !== undefined);
  // The first attempt: every request shares it (nothing is known to be failing yet).
  assertRejected(await verifier.verify(first), 401, /retrying in 5 s/);
  assert.equal(idp.discoveryRequests, 1);

  // Until the retry time: no fetch, no waiting, and the reason counts down on the clock.
  const burst = await Promise.all(tokens.map((tok) => timed(() => verifier.verify(tok))));
  for (const { value, ms } of burst) {
    assertRejected(value, 401, /^The identity provider is unavailable \(retrying in 5 s\)\.$/);
    assert.ok(ms < FAST_MS, `failed fast? ${Math.round(ms)} ms`);
  }
  clock.advance(3_500);
  assertRejected(await verifier.verify(first), 401, /retrying in 2 s/);
  clock.advance(1_499);
  assertRejected(await verifier.verify(first), 401, /retrying in 1 s/);
  assert.equal(idp.discoveryRequests, 1, 'no fetch before the retry time');

  // At the retry time: exactly one new fetch; one request waits for it (bounded by the
  // deadline), the 19 arriving meanwhile fail fast instead of queueing behind it.
  clock.advance(1);
  const probe = timed(() => verifier.verify(first));
  const during = await Promise.all(tokens.slice(1).map((tok) => timed(() => verifier.verify(tok))));
  assert.equal(idp.hanging <= 1, true, 'at most one fetch in flight');
  for (const { value, ms } of during) {
    assertRejected(value, 401, /identity provider is unavailable/);
    assert.ok(ms < FAST_MS, `failed fast during the probe? ${Math.round(ms)} ms`);
  }
  const p = await probe;
  assertRejected(p.value, 401, /retrying in 5 s/);
  assert.ok(p.ms >= 400 - 20 && p.ms < 400 + 1_000, `probe bounded by the deadline: ${Math.round(p.ms)} ms`);
  assert.equal(idp.discoveryRequests, 2, 'exactly one fetch per retry time');
  assert.equal(idp.jwksRequests, 0);
});

test('provider recovers: the next attempt after the retry time verifies again', { timeout: 10_000 }, async (t) => {
  const { clock, idp, verifier } = await setup(t, { fetchTimeoutMs: DEADLINE_MS });
  idp.setMode('hang');
  const token = await idp.sign();
  assertRejected(await verifier.verify(token), 401, /unavailable/);
  idp.setMode('up');
  // Recovered, but the retry time has not come: still failing fast, no fetch.
  assertRejected(await verifier.verify(token), 401, /retrying in 5 s/);
  assert.equal(idp.discoveryRequests, 1);
  clock.advance(5_000);
  const { value, ms } = await timed(() => verifier.verify(token));
  assertAccepted(value);
  assert.ok(ms < 1_000, `${Math.round(ms)} ms`);
  assert.equal(idp.discoveryRequests, 2);
  assert.equal(idp.jwksRequests, 1);
  // Healthy again: concurrent cold needs share one fetch as before (a new key here).
  const rotated = idp.rotate();
  clock.advance(5_000);
  const all = await Promise.all(Array.from({ length: 10 }, async (_, i) => verifier.verify(await idp.sign({ oid: `r${i}` }, { key: rotated }))));
  for (const r of all) assertAccepted(r);
  assert.equal(idp.jwksRequests, 2);
});

test('provider hanging: tokens whose key is cached keep verifying at once; the refresh gives up at the deadline', { timeout: 10_000 }, async (t) => {
  const { clock, idp, verifier, keys } = await setup(t, { fetchTimeoutMs: 400 });
  assertAccepted(await verifier.verify(await idp.sign()));
  idp.setMode('hang');
  clock.advance(25 * HOUR_MS); // discovery and key set both stale: background refreshes start
  const fresh = await Promise.all(Array.from({ length: 20 }, (_, i) => idp.sign({ oid: `known-${i}` })));
  const results = await Promise.all(fresh.map((tok) => timed(() => verifier.verify(tok))));
  for (const { value, ms } of results) {
    assertAccepted(value);
    assert.ok(ms < FAST_MS, `answered from the cached key set? ${Math.round(ms)} ms`);
  }
  const { ms: idleMs } = await timed(() => keys().idle());
  assert.ok(idleMs < 1_000, `the hanging refresh gave up at the deadline: ${Math.round(idleMs)} ms`);
  assert.equal(idp.jwksRequests, 2, 'one background refresh of the key set');
  assert.equal(keys().stats.failures, 1);

  // A rotated-in key (unknown kid) during the outage: one request waits for one refetch,
  // the others are refused at once; the known key still works meanwhile.
  clock.advance(5_000);
  const rotated = await Promise.all(Array.from({ length: 10 }, () => idp.sign({}, { key: generateSigningKey('RSA', 'rotated-1') })));
  const before = idp.jwksRequests;
  const unknown = await Promise.all(rotated.map((tok) => timed(() => verifier.verify(tok))));
  for (const { value } of unknown) assertRejected(value, 401, /unknown key/);
  const waited = unknown.filter(({ ms }) => ms >= FAST_MS);
  assert.ok(waited.length <= 1, `${waited.length} requests waited for the refetch`);
  for (const { ms } of unknown) assert.ok(ms < 400 + 1_000, `${Math.round(ms)} ms`);
  assert.equal(idp.jwksRequests, before + 1);
  assertAccepted(await verifier.verify(await idp.sign({ oid: 'still-known' })));
});

test('fetch_timeout_ms is the verifier\'s: a reload to a shorter one applies even to a fetch already in flight', { timeout: 10_000 }, async (t) => {
  const clock = manualClock();
  const idp = await startStandInEntra({ now: clock.now });
  t.after(() => idp.close());
  // The process-wide caches, as the gateway creates them: no deadline of their own.
  const jwks = new JwksCacheRegistry({ now: clock.now });
  const discovery = new OidcDiscovery({ now: clock.now });
  const make = (fetchTimeoutMs: number): EntraVerifier => createEntraVerifier({
    authority: idp.authority, tenants: [TENANT], audiences: [AUDIENCE], clockSkewS: 60, now: clock.now, jwks, discovery, fetchTimeoutMs,
  });
  assert.throws(() => make(0), /fetchTimeoutMs/);
  idp.setMode('hang');
  const token = await idp.sign();
  const slow = timed(() => make(1_500).verify(token)); // the config before the reload
  const { value, ms } = await timed(() => make(DEADLINE_MS).verify(token)); // and after it
  assertRejected(value, 401, /unavailable/);
  assert.ok(ms < 1_000, `bounded by the new deadline: ${Math.round(ms)} ms`);
  assert.equal(idp.discoveryRequests, 1, 'joined the fetch in flight, did not start another');
  const old = await slow;
  assertRejected(old.value, 401, /retrying in 5 s/);
  assert.ok(old.ms >= 1_400, `the old fetch kept its own deadline: ${Math.round(old.ms)} ms`);
});
