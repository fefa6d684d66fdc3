import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import { base64url } from 'jose';
import { manualClock } from '../../../../helpers/clock.ts';
import type { ManualClock } from '../../../../helpers/clock.ts';
import { createEntraVerifier } from '../../../../../policies/auth/jwt/entra-verifier.ts';
import { hasAnyRole } from '../../../../../policies/auth/credentials.ts';
import type { EntraVerifier, VerifyResult } from '../../../../../policies/auth/jwt/entra-verifier.ts';
import { defaultFetchJson, JwksCacheRegistry } from '../../../../../policies/auth/jwt/jwks-cache.ts';
import type { FetchJson, JwksCache } from '../../../../../policies/auth/jwt/jwks-cache.ts';
import { OidcDiscovery, openIdConfigurationUrl } from '../../../../../policies/auth/jwt/oidc-discovery.ts';
import { TokenCache } from '../../../../../policies/auth/jwt/token-cache.ts';
import {
  AUDIENCE, generateSigningKey, OTHER_TENANT, signHs256, startStandInEntra, TENANT, unsignedToken,
} from '../../../../helpers/entra.ts';
import type { StandInEntra } from '../../../../helpers/entra.ts';

const HOUR_MS = 60 * 60 * 1000;

interface Setup {
  clock: ManualClock;
  idp: StandInEntra;
  verifier: EntraVerifier;
  /** The JWKS cache the verifier uses for the stand-in's key set. */
  keys: () => JwksCache;
  warnings: string[];
}

/** A fresh stand-in Entra, manual clock and verifier per test, so counters are the test's own. */
async function setup(
  t: TestContext,
  o: { clockSkewS?: number; tenants?: string[]; fetchJson?: FetchJson; fetchTimeoutMs?: number } = {},
): Promise<Setup> {
  const clock = manualClock();
  const idp = await startStandInEntra({ now: clock.now });
  t.after(() => idp.close());
  const warnings: string[] = [];
  const logger = { warn: (_f: Record<string, unknown>, msg: string) => { warnings.push(msg); } };
  const fetchJson = o.fetchJson ?? defaultFetchJson;
  const jwks = new JwksCacheRegistry({ now: clock.now, fetchJson, logger });
  const verifier = createEntraVerifier({
    authority: `${idp.authority}/`, // trailing slash on purpose: must be normalised
    tenants: o.tenants ?? [TENANT],
    audiences: ['api://other', AUDIENCE],
    clockSkewS: o.clockSkewS ?? 60,
    now: clock.now,
    fetchJson,
    jwks,
    ...(o.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: o.fetchTimeoutMs }),
  });
  return { clock, idp, verifier, keys: () => jwks.get(idp.jwksUri), warnings };
}

function assertRejected(r: VerifyResult, status: 401 | 403, reason: RegExp): void {
  assert.equal(r.ok, false, 'token must be rejected');
  if (r.ok) return;
  assert.equal(r.status, status);
  assert.match(r.reason, reason);
}

function assertAccepted(r: VerifyResult): void {
  assert.equal(r.ok, true, r.ok ? '' : `rejected: ${r.reason}`);
}

test('a genuine RS256 token yields an aad_token principal; ES256 and PS256 work too', async (t) => {
  const { clock, idp, verifier } = await setup(t);
  const r = await verifier.verify(await idp.sign());
  assert.deepEqual(r, {
    ok: true,
    principal: {
      type: 'aad_token', id: '00000000-0000-4000-8000-000000000001', tenant: TENANT,
      roles: ['Model.Invoke', 'user_impersonation'],
    },
  });
  const ec = generateSigningKey('EC', 'ec-extra');
  idp.publish(ec);
  // ec-extra is not in the first fetched set: this also exercises the unknown-kid refetch.
  clock.advance(5_001);
  assertAccepted(await verifier.verify(await idp.sign({}, { key: ec })));
  assertAccepted(await verifier.verify(await idp.sign({}, { alg: 'PS256' })));
});

test('alg none is rejected without any signature check', async (t) => {
  const { clock, verifier } = await setup(t);
  const iat = Math.floor(clock.now() / 1000);
  const token = unsignedToken({ tid: TENANT, aud: AUDIENCE, iss: `https://sts.windows.net/${TENANT}/`, oid: 'x', iat, exp: iat + 600 }, 'rsa-1');
  assertRejected(await verifier.verify(token), 401, /unsigned/i);
  assert.equal(verifier.stats.signatureChecks, 0);
});

test('HS256 signed with the RSA public key (SPKI PEM as secret) is rejected', async (t) => {
  const { clock, idp, verifier } = await setup(t);
  const pem = idp.signer.publicKey.export({ type: 'spki', format: 'pem' });
  const iat = Math.floor(clock.now() / 1000);
  const claims = { tid: TENANT, aud: AUDIENCE, iss: idp.issuer(TENANT), oid: 'attacker', iat, exp: iat + 600 };
  for (const secret of [Buffer.from(pem), idp.signer.publicKey.export({ type: 'spki', format: 'der' })]) {
    assertRejected(await verifier.verify(await signHs256(claims, secret, idp.signer.kid)), 401, /algorithm is not accepted/);
  }
  assert.equal(verifier.stats.signatureChecks, 0);
});

test('a foreign key using a published kid fails the signature check', async (t) => {
  const { idp, verifier } = await setup(t);
  const foreign = generateSigningKey('RSA', idp.signer.kid);
  assertRejected(await verifier.verify(await idp.sign({}, { key: foreign })), 401, /signature is invalid/);
  assert.equal(verifier.stats.signatureChecks, 1);
});

test('a tampered payload fails the signature check', async (t) => {
  const { idp, verifier } = await setup(t);
  const [h, p, s] = (await idp.sign()).split('.');
  assert.ok(h !== undefined && p !== undefined && s !== undefined);
  const claims = JSON.parse(new TextDecoder().decode(base64url.decode(p))) as Record<string, unknown>;
  claims.roles = ['Admin'];
  const tampered = `${h}.${base64url.encode(JSON.stringify(claims))}.${s}`;
  assertRejected(await verifier.verify(tampered), 401, /signature is invalid/);
});

test('an RSA kid used with an EC algorithm is a key mismatch', async (t) => {
  const { idp, verifier } = await setup(t);
  const ec = generateSigningKey('EC');
  assertRejected(await verifier.verify(await idp.sign({}, { key: ec, kid: 'rsa-1' })), 401, /does not match/);
});

test('expired and not-yet-valid tokens are rejected; within clock skew they pass', async (t) => {
  const { clock, idp, verifier } = await setup(t, { clockSkewS: 60 });
  const nowS = Math.floor(clock.now() / 1000);
  assertRejected(await verifier.verify(await idp.sign({ exp: nowS - 61 })), 401, /expired/);
  assertRejected(await verifier.verify(await idp.sign({ nbf: nowS + 120 })), 401, /not yet valid/);
  assertAccepted(await verifier.verify(await idp.sign({ exp: nowS - 30 })));
  assertAccepted(await verifier.verify(await idp.sign({ nbf: nowS + 30 })));
  assertRejected(await verifier.verify(await idp.sign({ exp: undefined })), 401, /no valid expiry/);
});

test('wrong audience and wrong issuer are rejected; the v1 issuer is accepted', async (t) => {
  const { idp, verifier } = await setup(t);
  assertRejected(await verifier.verify(await idp.sign({ aud: 'api://someone-else' })), 401, /audience/);
  assertRejected(await verifier.verify(await idp.sign({ iss: `https://evil.example/${TENANT}/v2.0` })), 401, /issuer/);
  // Issuer of another tenant while tid claims ours: the issuer must match tid.
  assertRejected(await verifier.verify(await idp.sign({ iss: idp.issuer(OTHER_TENANT) })), 401, /issuer/);
  assertAccepted(await verifier.verify(await idp.sign({}, { issuerVersion: 'v1' })));
});

test('a genuine token of another tenant is 403; a forged one is 401', async (t) => {
  const { idp, verifier } = await setup(t, { tenants: [TENANT] });
  assertRejected(await verifier.verify(await idp.sign({ tid: OTHER_TENANT })), 403, /tenant is not allowed/);
  const forged = await idp.sign({ tid: OTHER_TENANT }, { key: generateSigningKey('RSA', idp.signer.kid) });
  assertRejected(await verifier.verify(forged), 401, /signature is invalid/);
  // Discovery only ever asked for the allowed tenant: an attacker's tid never reaches a URL.
  assert.equal(idp.discoveryRequests, 1);
});

test('a token without tid, or malformed input, is 401', async (t) => {
  const { idp, verifier } = await setup(t);
  assertRejected(await verifier.verify(await idp.sign({ tid: undefined })), 401, /tid/);
  for (const bad of ['', 'abc', 'a.b.c', 'a.b', 'x'.repeat(40_000)]) {
    assertRejected(await verifier.verify(bad), 401, /malformed/);
  }
  assertRejected(await verifier.verify(await idp.sign({}, { kid: '' })), 401, /no key id/);
});

test('keys with use "enc" are ignored (unknown key)', async (t) => {
  const { idp, verifier, keys } = await setup(t);
  assertAccepted(await verifier.verify(await idp.sign()));
  // enc-1 is published with use: enc and oct-1 is symmetric: neither may verify signatures.
  assertRejected(await verifier.verify(await idp.sign({}, { kid: 'enc-1' })), 401, /unknown key/);
  assertRejected(await verifier.verify(await idp.sign({}, { kid: 'oct-1' })), 401, /unknown key/);
  assert.equal(keys().size, 2, 'only rsa-1 and ec-1 are usable signing keys');
});

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

test('token cache: a repeat token skips crypto and fetches; a cached token dies at exp', async (t) => {
  const { clock, idp, verifier } = await setup(t, { clockSkewS: 0 });
  const token = await idp.sign({}, { lifetimeS: 600 });
  assertAccepted(await verifier.verify(token));
  const checks = verifier.stats.signatureChecks;
  const fetches = idp.jwksRequests + idp.discoveryRequests;
  assertAccepted(await verifier.verify(token));
  assert.equal(verifier.stats.cacheHits, 1);
  assert.equal(verifier.stats.signatureChecks, checks, 'no signature check on a hit');
  assert.equal(idp.jwksRequests + idp.discoveryRequests, fetches);

  // The synchronous fast path the request path uses sees the same cache.
  assert.equal(verifier.cached(token)?.type, 'aad_token');
  assert.equal(verifier.cached(await idp.sign({ oid: 'never-verified' })), undefined);
  assert.equal(verifier.stats.cacheHits, 2);

  clock.advance(600_000); // exactly exp
  assert.equal(verifier.cached(token), undefined, 'the fast path dies at exp too');
  assertRejected(await verifier.verify(token), 401, /expired/);
  assert.equal(verifier.stats.cacheHits, 2);
});

test('TokenCache: bounded, oldest evicted, never served at or past exp', () => {
  const clock = manualClock(1_000_000);
  const cache = new TokenCache({ now: clock.now, maxEntries: 2 });
  const p = { type: 'aad_token', id: 'a' } as const;
  const expS = 1_000 + 60;
  cache.set('t1', p, expS);
  cache.set('t2', p, expS);
  cache.set('t3', p, expS);
  assert.equal(cache.size, 2);
  assert.equal(cache.get('t1'), undefined, 'oldest evicted');
  assert.deepEqual(cache.get('t3'), p);
  cache.set('past', p, 999); // already expired: not stored
  assert.equal(cache.get('past'), undefined);
  clock.set(expS * 1000 - 1);
  assert.deepEqual(cache.get('t2'), p);
  clock.set(expS * 1000);
  assert.equal(cache.get('t2'), undefined);
});

test('principal: roles plus scp scopes; id falls back oid → appid → azp → sub', async (t) => {
  const { idp, verifier } = await setup(t);
  const r = await verifier.verify(await idp.sign({ roles: ['Model.Invoke', 'Model.Admin', 7], scp: '  read   write ' }));
  assert.ok(r.ok);
  assert.deepEqual(r.principal.roles, ['Model.Invoke', 'Model.Admin', 'read', 'write']);

  const ids = [
    [{ oid: undefined, appid: 'app-1' }, 'app-1'],
    [{ oid: undefined, azp: 'azp-1' }, 'azp-1'],
    [{ oid: undefined, azp: undefined, sub: 'sub-1' }, 'sub-1'],
  ] as const;
  for (const [claims, id] of ids) {
    const res = await verifier.verify(await idp.sign(claims));
    assert.ok(res.ok);
    assert.equal(res.principal.id, id);
  }
  const none = await idp.sign({ oid: undefined, azp: undefined, sub: undefined, roles: undefined, scp: undefined });
  assertRejected(await verifier.verify(none), 401, /identifies no caller/);
  const bare = await verifier.verify(await idp.sign({ roles: undefined, scp: undefined }));
  assert.ok(bare.ok);
  assert.deepEqual(bare.principal.roles, []);
});

test('hasAnyRole', () => {
  const p = { type: 'aad_token', id: 'x', roles: ['Model.Invoke', 'read'] } as const;
  assert.equal(hasAnyRole(p, []), true);
  assert.equal(hasAnyRole(p, ['Model.Admin', 'read']), true);
  assert.equal(hasAnyRole(p, ['Model.Admin']), false);
  assert.equal(hasAnyRole({ type: 'aad_token', id: 'y' }, ['read']), false);
  assert.equal(hasAnyRole({ type: 'aad_token', id: 'y' }, []), true);
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
