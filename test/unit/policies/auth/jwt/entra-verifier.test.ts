// Verifying Entra-style tokens: signatures, algorithms, claims, tenants, the verified-token cache.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { base64url } from 'jose';
import { manualClock } from '../../../../helpers/clock.ts';
import { hasAnyRole } from '../../../../../policies/auth/credentials.ts';
import { TokenCache } from '../../../../../policies/auth/jwt/token-cache.ts';
import {
  AUDIENCE, generateSigningKey, OTHER_TENANT, signHs256, TENANT, unsignedToken,
} from '../../../../helpers/entra.ts';
import { assertAccepted, assertRejected, setup } from '../../../../helpers/entra-verifier.ts';

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

