import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { adminAuthPolicy, authFactory } from '../../../../policies/auth/auth.ts';
import type { Verdict } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, scopeOf } from '../../../helpers/policy.ts';

const dep = { instances: ['http://127.0.0.1:1'] };
const doc = { endpoints: { cars: { keys: { primary: 'k-primary-1', secondary: 'k-secondary-2' }, deployments: { blue: dep } } } };
const bearer = (t: string): FakeContext => new FakeContext({ headers: { authorization: `Bearer ${t}` } });
const sync = (v: Verdict | Promise<Verdict>): Verdict => {
  assert.ok(!(v instanceof Promise), 'key auth is synchronous');
  return v;
};

test('compile: every endpoint gets an auth policy', () => {
  assert.ok(authFactory.create(scopeOf(doc), fakeDeps()));
  assert.equal(authFactory.stage, 'endpoint');
});

test('a key admits its slot as the principal; a wrong or missing key is 401', () => {
  const p = authFactory.create(scopeOf(doc), fakeDeps())!;
  for (const [key, slot] of [['k-primary-1', 'primary'], ['k-secondary-2', 'secondary']] as const) {
    const ctx = bearer(key);
    assert.equal(sync(p.evaluate(ctx)).kind, 'continue');
    assert.deepEqual(ctx.principal, { type: 'key', id: slot });
  }
  const bad = sync(p.evaluate(bearer('k-primary-2')));
  assert.equal(bad.kind === 'reject' && bad.error.status, 401);
  const none = sync(p.evaluate(new FakeContext()));
  assert.equal(none.kind === 'reject' && none.error.code, 'Unauthorized');
});

test('a regenerated key (keyOverride) replaces the configured one for its slot', () => {
  const digest = createHash('sha256').update('k-regenerated').digest();
  const p = authFactory.create(scopeOf(doc), fakeDeps({ keyOverride: (_e, slot) => (slot === 'primary' ? digest : undefined) }))!;
  assert.equal(sync(p.evaluate(bearer('k-regenerated'))).kind, 'continue');
  assert.equal(sync(p.evaluate(bearer('k-primary-1'))).kind, 'reject');
  assert.equal(sync(p.evaluate(bearer('k-secondary-2'))).kind, 'continue');
});

test('aad_token mode refuses a credential that is not shaped like a JWT at once, without the verifier', () => {
  const s = scopeOf({
    entra: { tenants: ['t1'], audiences: ['api://x'], authority: 'http://127.0.0.1:1' },
    endpoints: { cars: { auth_mode: 'aad_token', deployments: { blue: dep } } },
  });
  const p = authFactory.create(s, fakeDeps())!;
  const v = p.evaluate(bearer('not-a-jwt'));
  assert.ok(!(v instanceof Promise));
  assert.equal(v.kind === 'reject' && v.error.status, 401);
});

test('the verifier is kept in the state registry: the same entra settings share one across compiles', () => {
  const s = scopeOf({
    entra: { tenants: ['t1'], audiences: ['api://x'], authority: 'http://127.0.0.1:1' },
    endpoints: { cars: { auth_mode: 'key_or_aad_token', keys: { primary: 'k-primary-1' }, deployments: { blue: dep } } },
  });
  const deps = fakeDeps();
  authFactory.create(s, deps);
  const n = deps.state.size;
  authFactory.create(s, deps);
  assert.equal(deps.state.size, n, 'nothing new created for the same settings');
  assert.ok(n >= 3, 'key-set cache, discovery and verifier are live state');
});

test('admin auth is the same policy with admin keys: admin-key-N principals, endpoint keys refused', () => {
  const s = scopeOf({ ...doc, admin: { keys: ['adm-1', 'adm-2'] } });
  const p = adminAuthPolicy(s.gateway, fakeDeps());
  const ctx = bearer('adm-2');
  assert.equal(sync(p.evaluate(ctx)).kind, 'continue');
  assert.deepEqual(ctx.principal, { type: 'admin_key', id: 'admin-key-2' });
  const v = sync(p.evaluate(bearer('k-primary-1')));
  assert.equal(v.kind === 'reject' && v.error.message.startsWith('Admin API: '), true);
});
