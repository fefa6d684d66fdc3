import assert from 'node:assert/strict';
import { BlockList } from 'node:net';
import { test } from 'node:test';
import { clientIp, hopAddress } from '../../../../policies/shared/client-ip.ts';

// Who the client is behind trusted proxies (SPEC §2 trusted_proxies). A hop that is not an
// address breaks the chain: the client is unknown (''), so allow-lists fail closed and no
// forged text reaches the access log.

const trusted = new BlockList();
trusted.addSubnet('10.0.0.0', 8, 'ipv4');
trusted.addSubnet('fd00::', 8, 'ipv6');

test('the first untrusted hop from the right is the client', () => {
  assert.equal(clientIp('10.0.0.1', true, '203.0.113.7', trusted), '203.0.113.7');
  assert.equal(clientIp('10.0.0.1', true, '198.51.100.1, 203.0.113.7, 10.0.0.9', trusted), '203.0.113.7');
  assert.equal(clientIp('10.0.0.1', true, ['203.0.113.7', '10.0.0.9'], trusted), '203.0.113.7');
  assert.equal(clientIp('10.0.0.1', true, '2001:db8::1, fd00::5', trusted), '2001:db8::1');
  assert.equal(clientIp('10.0.0.1', true, '::ffff:203.0.113.7', trusted), '203.0.113.7');
  // Every hop trusted: the leftmost; nothing usable at all: the peer.
  assert.equal(clientIp('10.0.0.1', true, '10.0.0.7, 10.0.0.8', trusted), '10.0.0.7');
  assert.equal(clientIp('10.0.0.1', true, ' , ', trusted), '10.0.0.1');
  // An untrusted peer's header is not read.
  assert.equal(clientIp('192.0.2.1', false, '<script>', trusted), '192.0.2.1');
});

test('a hop that is not an address breaks the chain: the client is unknown', () => {
  for (const xff of ['garbage, <script>', '<script>', '203.0.113.7, unknown', 'evil.example', '203.0.113.7, 1.2.3.4.5, 10.0.0.9', '"1.2.3.4"', '[::1']) {
    assert.equal(clientIp('10.0.0.1', true, xff, trusted), '', xff);
  }
  // Only what the walk reaches matters: garbage left of the client is never read.
  assert.equal(clientIp('10.0.0.1', true, 'garbage, 203.0.113.7', trusted), '203.0.113.7');
  // Empty list elements are allowed (RFC 9110 §5.6.1).
  assert.equal(clientIp('10.0.0.1', true, '203.0.113.7,, 10.0.0.9,', trusted), '203.0.113.7');
});

test('a hop with a port (Azure Application Gateway) is its address', () => {
  assert.equal(hopAddress('203.0.113.7:5432'), '203.0.113.7');
  assert.equal(hopAddress('[2001:db8::1]:443'), '2001:db8::1');
  assert.equal(hopAddress('[2001:db8::1]'), '2001:db8::1');
  assert.equal(clientIp('10.0.0.1', true, '203.0.113.7:5432, 10.0.0.9:80', trusted), '203.0.113.7');
  for (const bad of ['203.0.113.7:', '203.0.113.7:123456', '203.0.113.7:8x', ':80', '[2001:db8::1]:', '[2001:db8::1]x', '[203.0.113.7]', 'host:80']) {
    assert.equal(hopAddress(bad), '', bad);
  }
});
