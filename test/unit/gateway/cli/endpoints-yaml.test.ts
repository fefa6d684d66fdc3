import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfigText } from '../../../../config/load.ts';
import { endpointsYaml, parseEndpointsYaml } from '../../../../gateway/cli/endpoints-yaml.ts';

const cars = {
  keys: { primary: '<redacted>' },
  traffic: { blue: 100 },
  roles: [],
  deployments: { blue: { instances: ['http://10.0.0.1:5001'], request_settings: { request_timeout_ms: 5000 } } },
};

test('get prints an endpoints: section that apply reads back as it was, and that is a valid config file', () => {
  const text = endpointsYaml({ cars }, ['switchyard get cars']);
  assert.match(text, /^# switchyard get cars\nendpoints:\n {2}cars:\n {4}keys:\n {6}primary: <redacted>\n/);
  const back = parseEndpointsYaml(text);
  assert.deepEqual(back, { ok: true, endpoints: [['cars', cars]] });
  // The same text loads as a config file (keys as literals: "<redacted>" is a well-formed one).
  assert.ok(parseConfigText(text, {}).ok);
});

test('apply reads ${ENV} references as written, even where YAML would not parse them', () => {
  const r = parseEndpointsYaml('endpoints:\n  cars:\n    keys: { primary: ${CARS_KEY} }\n    deployments: { blue: { instances: ["${BLUE:-http://10.0.0.1:5001}"] } }\n');
  assert.ok(r.ok);
  assert.deepEqual(r.endpoints[0], ['cars', { keys: { primary: '${CARS_KEY}' }, deployments: { blue: { instances: ['${BLUE:-http://10.0.0.1:5001}'] } } }]);
});

test('apply refuses the sections only the config file sets, and says where to set them', () => {
  const r = parseEndpointsYaml('server:\n  listen: { port: 8080 }\nstate: {}\nendpoints:\n  cars: { traffic: {} }\n');
  assert.ok(!r.ok);
  assert.deepEqual(r.problems, [
    'server: only endpoints can be applied through the admin API; server is set in the gateway\'s config file (edit it there: the gateway reloads on save)',
    'state: only endpoints can be applied through the admin API; state is set in the gateway\'s config file (edit it there: the gateway reloads on save)',
  ]);
});

test('apply: bad shapes and bad YAML are problems with a line and column, never the text', () => {
  const cases: [string, RegExp][] = [
    ['', /expected a map with an endpoints: section/],
    ['- a\n- b\n', /expected a map with an endpoints: section/],
    ['endpoints: {}\n', /^endpoints: expected a map of endpoint name to its config/],
    ['endpoints:\n  cars: 3\n', /^endpoints\.cars: expected the endpoint's config \(a map\)$/],
    ['endpoints:\n  cars:\n    keys: { primary: secret-key-0123456789\n', /^not valid YAML at line \d+, column \d+: /],
    ['endpoints:\n  cars: {}\n  cars: {}\n', /^not valid YAML at line 3, column 3: duplicate key$/],
    ['"secret-key-0123456789 x": 1\nendpoints:\n  cars: {}\n', /^a top-level key other than endpoints/],
  ];
  for (const [text, pattern] of cases) {
    const r = parseEndpointsYaml(text);
    assert.ok(!r.ok, text);
    assert.match(r.problems[0] ?? '', pattern, text);
    assert.doesNotMatch(r.problems.join('\n'), /secret-key/, text);
  }
});
