import assert from 'node:assert/strict';
import { test } from 'node:test';
import { networkFactory } from '../../../../policies/network/network.ts';
import type { Verdict } from '../../../../policies/policy.ts';
import { FakeContext, fakeDeps, scopeOf } from '../../../helpers/policy.ts';

const dep = { instances: ['http://127.0.0.1:1'] };
const doc = (ep: Record<string, unknown>): Record<string, unknown> => ({
  server: { private_listen: { host: '127.0.0.2', port: 0 } },
  endpoints: { cars: { keys: { primary: 'k-network-1' }, deployments: { blue: dep }, ...ep } },
});
const code = (v: Verdict | Promise<Verdict>): string => {
  assert.ok(!(v instanceof Promise), 'the network policy is synchronous');
  return v.kind === 'reject' ? v.error.code : 'continue';
};

test('compile: a public endpoint without allowed_networks needs no network policy', () => {
  assert.equal(networkFactory.create(scopeOf(doc({})), fakeDeps()), undefined);
  assert.equal(networkFactory.stage, 'endpoint');
});

test('a private endpoint is hidden from the public listener (404, as if unknown) and served on the private one', () => {
  const p = networkFactory.create(scopeOf(doc({ public_network_access: 'disabled' })), fakeDeps());
  assert.ok(p);
  assert.equal(code(p.evaluate(new FakeContext({ listener: 'public' }))), 'EndpointNotFound');
  assert.equal(code(p.evaluate(new FakeContext({ listener: 'private' }))), 'continue');
});

test('allowed_networks admits clients inside the CIDRs and refuses the rest with 403', () => {
  const p = networkFactory.create(scopeOf(doc({ allowed_networks: ['10.0.0.0/8', '::1/128'] })), fakeDeps());
  assert.ok(p);
  assert.equal(code(p.evaluate(new FakeContext({ clientIp: '10.2.3.4' }))), 'continue');
  assert.equal(code(p.evaluate(new FakeContext({ clientIp: '::1' }))), 'continue');
  assert.equal(code(p.evaluate(new FakeContext({ clientIp: '192.168.1.1' }))), 'NetworkNotAllowed');
});
