import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../../../config/load.ts';
import { planChanges } from '../../../../gateway/cli/commands/apply.ts';
import { formatAudit } from '../../../../gateway/cli/commands/audit.ts';
import { fileChanges } from '../../../../gateway/cli/commands/validate.ts';
import { diff, diffEndpoints, formatChanges, redactKeys, sameValue } from '../../../../gateway/cli/config-diff.ts';

const blue = { instances: ['http://10.0.0.1:5001'], scoring_route: '/score' };

test('a diff walks objects member by member and compares anything else whole', () => {
  const before = { traffic: { blue: 100 }, deployments: { blue }, roles: [] as string[] };
  const after = { traffic: { blue: 90, green: 10 }, deployments: { blue: { ...blue, instances: [...blue.instances, 'http://10.0.0.2:5001'] }, green: blue }, roles: [] };
  assert.equal(formatChanges(diff(before, after, 'endpoints.cars')), [
    '~ endpoints.cars.traffic.blue: 100 -> 90',
    '+ endpoints.cars.traffic.green: 10',
    '~ endpoints.cars.deployments.blue.instances: ["http://10.0.0.1:5001"] -> ["http://10.0.0.1:5001","http://10.0.0.2:5001"]',
    '+ endpoints.cars.deployments.green',
    '',
  ].join('\n'));
  assert.equal(formatChanges(diff(after, before, 'x')), '~ x.traffic.blue: 90 -> 100\n- x.traffic.green: 10\n~ x.deployments.blue.instances: ["http://10.0.0.1:5001","http://10.0.0.2:5001"] -> ["http://10.0.0.1:5001"]\n- x.deployments.green\n');
  assert.deepEqual(diff(before, structuredClone(before), 'x'), []);
  assert.equal(formatChanges([]), 'no changes\n');
});

test('equal as JSON: key order does not matter, an undefined member is an absent one', () => {
  assert.ok(sameValue({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }));
  assert.ok(sameValue({ a: 1, b: undefined }, { a: 1 }));
  assert.deepEqual(diff({ a: 1, b: undefined }, { a: 1 }, 'x'), []);
  assert.ok(!sameValue([1, 2], [2, 1]));
  assert.ok(!sameValue({ a: 1 }, { a: '1' }));
});

test('whole endpoints added and removed; odd names quoted; long and control-character values clipped and made printable', () => {
  const lines = formatChanges(diffEndpoints({ cars: { a: 1 }, dogs: { a: 1 } }, { cars: { a: 1 }, vans: { a: 1 }, dogs: null }));
  assert.equal(lines, '- endpoints.dogs\n+ endpoints.vans\n');
  assert.equal(formatChanges(diff({ callers: {} }, { callers: { 'team.a b': 'critical' } }, 'p')), '+ p.callers["team.a b"]: "critical"\n');
  const long = formatChanges(diff('a', 'x'.repeat(500), 'p'));
  assert.ok(long.length < 200 && long.includes('…'));
  assert.equal(formatChanges(diff('a', 'b\u001b[2J', 'p')), '~ p: "a" -> "b\\u001b[2J"\n');
});

test('keys compare as present or absent: a file\'s keys are redacted as the admin API shows them', () => {
  assert.deepEqual(redactKeys({ keys: { primary: 'secret-key-0123456789' }, traffic: {} }), { keys: { primary: '<redacted>' }, traffic: {} });
  assert.deepEqual(redactKeys({ traffic: {} }), { traffic: {} });
  const changes = diff({ keys: { primary: '<redacted>' } }, redactKeys({ keys: { primary: 'k1-0123456789', secondary: 'k2-0123456789' } }), 'e');
  assert.equal(formatChanges(changes), '+ e.keys.secondary: "<redacted>"\n');
  assert.doesNotMatch(JSON.stringify(changes), /0123456789/);
});

test('apply: a key FILE sets (not "<redacted>") is a change though both sides show it redacted, never its value', () => {
  const before = { keys: { primary: '<redacted>', secondary: '<redacted>' }, traffic: { blue: 100 } };
  const after = { keys: { primary: '<redacted>', secondary: '<redacted>' }, traffic: { blue: 100 } };
  const body = { keys: { primary: 'new-key-0123456789', secondary: '<redacted>' } };
  const changes = planChanges('cars', body, before, after);
  assert.equal(formatChanges(changes), '~ endpoints.cars.keys.primary: "<redacted>" -> "<new key>"\n');
  assert.deepEqual(planChanges('cars', { keys: { primary: '<redacted>' } }, before, after), []);
  // A new endpoint: one line for it, nothing about its keys.
  assert.equal(formatChanges(planChanges('cars', body, null, after)), '+ endpoints.cars\n');
});

test('validate --diff compares the file as the gateway would load it (defaults filled, keys redacted)', () => {
  const r = parseConfig({
    endpoints: {
      cars: { keys: { primary: 'file-key-0123456789' }, traffic: { blue: 90, green: 10 }, deployments: { blue: { instances: ['http://10.0.0.1:5001'] }, green: { instances: ['http://10.0.0.2:5001'] } } },
      vans: { keys: { primary: 'file-key-0123456789' }, traffic: { blue: 100 }, deployments: { blue: { instances: ['http://10.0.0.3:5001'] } } },
    },
  }, {});
  assert.ok(r.ok);
  // What the gateway shows for cars: the same defaults, its key redacted, blue at 100 and no green.
  const running = structuredClone(redactKeys(r.config.endpoints.cars)) as { traffic: Record<string, number>; deployments: Record<string, unknown> };
  running.traffic = { blue: 100 };
  delete running.deployments.green;
  const changes = fileChanges([{ name: 'cars', config: running }, { name: 'dogs', config: { traffic: {} } }], r.config);
  assert.equal(formatChanges(changes), [
    '~ endpoints.cars.traffic.blue: 100 -> 90',
    '+ endpoints.cars.traffic.green: 10',
    '+ endpoints.cars.deployments.green',
    '- endpoints.dogs',
    '+ endpoints.vans',
    '',
  ].join('\n'));
  assert.doesNotMatch(JSON.stringify(changes), /file-key/);
});

test('the audit table: one change a line, newest first as given, values made printable', () => {
  const text = formatAudit([
    { version: 3, previous_version: 2, at: '2026-11-02T10:00:00.123Z', by: 'admin_key:ops', action: 'patch', endpoint: 'cars', change: { traffic: { blue: 90 } } },
    { version: 2, previous_version: 1, at: '2026-11-02T09:00:00.000Z', by: 'aad_token:\u001b]0;x', action: 'regenerate_key', endpoint: 'cars', change: { key_type: 'primary' } },
  ]);
  assert.equal(text, [
    'VERSION  AT                    BY               ACTION          ENDPOINT  CHANGE',
    '2→3      2026-11-02T10:00:00Z  admin_key:ops    patch           cars      {"traffic":{"blue":90}}',
    '1→2      2026-11-02T09:00:00Z  aad_token:?]0;x  regenerate_key  cars      {"key_type":"primary"}',
    '',
  ].join('\n'));
  assert.equal(formatAudit([]), 'no changes made through the admin API\n');
});
