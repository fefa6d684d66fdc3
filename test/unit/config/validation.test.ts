import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssues, parseConfig, parseConfigText } from '../../../config/load.ts';

/**
 * Issue 7 item 10: configs that cannot work are refused, each with its field path, all
 * in one run, with "did you mean" for a misspelt key. Documents are built as objects here
 * (parseConfig is what the admin API and the YAML loader share).
 */
function doc(over: { server?: Record<string, unknown>; cars?: Record<string, unknown>; blue?: Record<string, unknown> } = {}): Record<string, unknown> {
  return {
    server: { listen: { host: '127.0.0.1', port: 8080 }, admin_listen: { host: '127.0.0.1', port: 9090 }, ...over.server },
    endpoints: {
      cars: {
        keys: { primary: 'cars-key-1' },
        traffic: { blue: 100 },
        deployments: { blue: { instances: ['http://10.0.0.11:5001'], ...over.blue } },
        ...over.cars,
      },
    },
  };
}

/** The problems of `d`, one `path: message` line each (empty when it loads). */
function problems(d: unknown): string[] {
  const r = parseConfig(d, {});
  return r.ok ? [] : formatIssues(r.issues).split('\n');
}

function assertRefused(d: unknown, path: string, message: RegExp): string[] {
  const lines = problems(d);
  assert.ok(lines.some((l) => l.startsWith(`${path}: `) && message.test(l.slice(path.length + 2))), `want ${path}: ${message}, got:\n${lines.join('\n')}`);
  return lines;
}

test('the baseline document loads', () => {
  assert.deepEqual(problems(doc()), []);
});

test('a scoring_route that is not an origin-form path is refused', () => {
  for (const route of ['/sc ore', '/score\r\nX-Injected: 1', '/score\n', '/scöre', '/score?x=1', '/score#frag', 'score', '/a%zz', '/tab\there']) {
    assertRefused(doc({ blue: { scoring_route: route } }), 'endpoints.cars.deployments.blue.scoring_route', /must be a path such as \/score/);
  }
  for (const route of ['/score', '/', '/v1/models/m:predict', "/a-b_c.d~e/!$&'()*+,;=@", '/x%20y', '/api/v2/']) {
    assert.deepEqual(problems(doc({ blue: { scoring_route: route } })), [], route);
  }
});

test('a key literal with surrounding whitespace is refused, without quoting it', () => {
  for (const key of [' cars-key-1', 'cars-key-1 ', 'cars-key-1\n', '\tcars-key-1']) {
    const lines = assertRefused(doc({ cars: { keys: { secondary: key } } }), 'endpoints.cars.keys.secondary', /leading or trailing whitespace/);
    assert.ok(!lines.join('\n').includes('cars-key-1'), lines.join('\n'));
  }
  assertRefused({ ...doc(), admin: { keys: ['admin-key '] } }, 'admin.keys.0', /leading or trailing whitespace/);
});

test('listeners that would take the same address and port are refused', () => {
  assertRefused(doc({ server: { admin_listen: { host: '127.0.0.1', port: 8080 } } }), 'server.admin_listen', /overlaps server\.listen/);
  assertRefused(doc({ server: { private_listen: { host: '127.0.0.1', port: 8080 } } }), 'server.private_listen', /overlaps server\.listen/);
  // A wildcard takes the port on every address.
  assertRefused(doc({ server: { listen: { host: '0.0.0.0', port: 8080 }, private_listen: { host: '10.1.2.3', port: 8080 } } }), 'server.private_listen', /overlaps server\.listen/);
  assertRefused(doc({ server: { admin_listen: { port: 8080 } } }), 'server.admin_listen', /overlaps server\.listen/); // admin's default host is 127.0.0.1
  assertRefused(doc({ server: { listen: { port: 8080 }, admin_listen: { host: '::', port: 8080 } } }), 'server.admin_listen', /overlaps/);
  // Different ports, different specific hosts, or port 0 (a free port each) are fine.
  assert.deepEqual(problems(doc({ server: { private_listen: { host: '10.1.2.3', port: 8081 } } })), []);
  assert.deepEqual(problems(doc({ server: { listen: { host: '10.1.2.3', port: 8080 }, private_listen: { host: '10.1.2.4', port: 8080 } } })), []);
  assert.deepEqual(problems(doc({ server: { listen: { host: '127.0.0.1', port: 0 }, admin_listen: { host: '127.0.0.1', port: 0 } } })), []);
});

test('a listen host that is neither an IP address nor a hostname is refused', () => {
  for (const host of ['not a host!', '[::1]', 'host_name', '-bad.example', 'a..b', 'x'.repeat(64)]) {
    assertRefused(doc({ server: { listen: { host, port: 8080 } } }), 'server.listen.host', /must be an IP address .* or a hostname/);
  }
  assertRefused(doc({ server: { admin_listen: { host: 'no way', port: 9090 } } }), 'server.admin_listen.host', /IP address/);
  for (const host of ['0.0.0.0', '::', '::1', 'localhost', 'gw-1.internal.example.com', 'example.com.']) {
    assert.deepEqual(problems(doc({ server: { listen: { host, port: 8080 } } })), [], host);
  }
});

test('credentials in an instance URL are refused, and the password is not repeated', () => {
  for (const url of ['http://user:hunter2pw@10.0.0.11:5001', 'http://hunter2pw@10.0.0.11:5001', 'https://:hunter2pw@model.example']) {
    const lines = assertRefused(doc({ blue: { instances: [url] } }), 'endpoints.cars.deployments.blue.instances.0', /user:password@/);
    assert.ok(!lines.join('\n').includes('hunter2pw'), lines.join('\n'));
  }
});

test('max_body_bytes: 0 is refused (it is not "unlimited")', () => {
  assertRefused(doc({ server: { max_body_bytes: 0 } }), 'server.max_body_bytes', /must be at least 1/);
  assert.deepEqual(problems(doc({ server: { max_body_bytes: 1 } })), []);
});

test('every problem in one run: schema errors do not hide cross-field ones', () => {
  const lines = problems(doc({
    server: { admin_listen: { host: '127.0.0.1', port: 8080 }, trusted_proxies: ['10.0.0.0/33'], max_body_bytes: 0 },
    cars: {
      traffic: { blue: 90, ghost: 5 },
      colour: 'red',
      deployments: {
        blue: { instances: ['http://10.0.0.11:5001', 'http://10.0.0.11:5001/'], scoring_route: '/s c' },
        green: { instances: [] },
      },
    },
  }));
  for (const want of [
    /^server\.max_body_bytes: must be at least 1/,
    /^server\.admin_listen: .*overlaps server\.listen/,
    /^server\.trusted_proxies\.0: bad prefix length/,
    /^endpoints\.cars\.colour: unknown key$/,
    /^endpoints\.cars\.traffic: values must sum to 100 or 0, got 95$/,
    /^endpoints\.cars\.traffic\.ghost: no deployment named ghost$/,
    /^endpoints\.cars\.deployments\.blue\.scoring_route: /,
    /^endpoints\.cars\.deployments\.green\.instances: /,
  ]) assert.ok(lines.some((l) => want.test(l)), `missing ${want} in:\n${lines.join('\n')}`);
  // blue is invalid (its route), so its duplicate instance is not checked: one layer only
  // where the layer below is broken; but a valid deployment's duplicate is found.
  const dup = problems(doc({ cars: { colour: 'red', deployments: { blue: { instances: ['http://10.0.0.11:5001', 'http://10.0.0.11:5001'] } } } }));
  assert.ok(dup.includes('endpoints.cars.deployments.blue.instances.1: http://10.0.0.11:5001 is listed twice'), dup.join('\n'));
  assert.ok(dup.includes('endpoints.cars.colour: unknown key'), dup.join('\n'));
});

test('"did you mean" for a misspelt key, at every level', () => {
  const lines = problems({
    ...doc({ cars: { trafic: { blue: 100 }, auth_mod: 'key' }, blue: { scoring_rout: '/score', request_setings: {} } }),
    logging: { levle: 'info' },
    sever: {},
  });
  for (const want of [
    'endpoints.cars.trafic: unknown key; did you mean traffic?',
    'endpoints.cars.auth_mod: unknown key; did you mean auth_mode?',
    'endpoints.cars.deployments.blue.scoring_rout: unknown key; did you mean scoring_route?',
    'endpoints.cars.deployments.blue.request_setings: unknown key; did you mean request_settings?',
    'logging.levle: unknown key; did you mean level?',
    'sever: unknown key; did you mean server?',
  ]) assert.ok(lines.includes(want), `missing ${want} in:\n${lines.join('\n')}`);
  // Nothing close: no guess.
  assert.ok(problems(doc({ cars: { colour: 'red' } })).includes('endpoints.cars.colour: unknown key'));
});

test('YAML text gets the same checks', () => {
  const r = parseConfigText('server:\n  listen: { host: "not a host!", port: 8080 }\nendpoints:\n  cars:\n    keys: { primary: k1 }\n    deployments: { blue: { instances: [http://10.0.0.1:1] } }\n    traffic: { blue: 100 }\n', {});
  assert.ok(!r.ok);
  assert.deepEqual(formatIssues(r.issues).split('\n'), ['server.listen.host: must be an IP address (0.0.0.0, ::1; no brackets) or a hostname']);
});

test('state.redis_url must be a redis URL, and a password in it is not repeated', () => {
  const bad = (url: string): string[] => assertRefused({ ...doc(), state: { redis_url: url } }, 'state.redis_url', /redis:\/\/ or rediss:\/\//);
  bad('http://10.0.0.5:6379');
  const lines = bad('redis//:s3cret-pass@10.0.0.5');
  assert.ok(!lines.join('\n').includes('s3cret-pass'));
  assert.deepEqual(problems({ ...doc(), state: { redis_url: 'rediss://:pw@cache.internal:6380/2', on_redis_error: 'closed' } }), []);
  assertRefused({ ...doc(), state: { redis_url: 'redis://h:6379', on_redis_error: 'fail' } }, 'state.on_redis_error', /local|open|closed/);
});

test('overload settings are checked with their paths', () => {
  assertRefused(doc({ cars: { rate_limit: { requests_per_second: 0 } } }), 'endpoints.cars.rate_limit.requests_per_second', /./);
  assertRefused(doc({ cars: { rate_limit: { requests_per_second: 10, per: 'ip' } } }), 'endpoints.cars.rate_limit.per', /endpoint|caller/);
  assertRefused(doc({ cars: { priority: { callers: { secondary: 'low' } } } }), 'endpoints.cars.priority.callers.secondary', /critical|standard|sheddable/);
  assertRefused(doc({ blue: { request_settings: { max_concurrent_requests_per_instance: 0 } } }), 'endpoints.cars.deployments.blue.request_settings.max_concurrent_requests_per_instance', /./);
  assertRefused(doc({ blue: { circuit_breaker: { error_threshold_percent: 0 } } }), 'endpoints.cars.deployments.blue.circuit_breaker.error_threshold_percent', /./);
  assertRefused(doc({ server: { load_shedding: { max_event_loop_delay_ms: 0 } } }), 'server.load_shedding.max_event_loop_delay_ms', /./);
});

test('mirror_traffic: at most 50%, one target, never a deployment with live traffic (as Azure ML)', () => {
  const withShadow = (mirror: Record<string, number>, traffic: Record<string, number> = { blue: 100 }) => doc({
    cars: { traffic, mirror_traffic: mirror, deployments: { blue: { instances: ['http://10.0.0.11:5001'] }, shadow: { instances: ['http://10.0.0.31:5001'] }, other: { instances: ['http://10.0.0.41:5001'] } } },
  });
  assert.deepEqual(problems(withShadow({ shadow: 50 })), []);
  assertRefused(withShadow({ shadow: 51 }), 'endpoints.cars.mirror_traffic.shadow', /50/);
  assertRefused(withShadow({ shadow: 10, other: 10 }), 'endpoints.cars.mirror_traffic', /one deployment/);
  assertRefused(withShadow({ blue: 10 }), 'endpoints.cars.mirror_traffic.blue', /live traffic/);
  assertRefused(doc({ cars: { mirror_max_in_flight: 0 } }), 'endpoints.cars.mirror_max_in_flight', /./);
});

test('durations are bounded (a timer past 2^31-1 ms fires at once) and a bad one is one problem, not two', () => {
  assertRefused(doc({ blue: { readiness_probe: { period: 3_000_000 } } }), 'endpoints.cars.deployments.blue.readiness_probe.period', /at most 86400/);
  assertRefused(doc({ blue: { readiness_probe: { initial_delay: 3_000_000 } } }), 'endpoints.cars.deployments.blue.readiness_probe.initial_delay', /at most 86400/);
  assertRefused(doc({ blue: { request_settings: { max_queue_wait_ms: 5_000_000 } } }), 'endpoints.cars.deployments.blue.request_settings.max_queue_wait_ms', /at most 3600000/);
  assertRefused(doc({ server: { shutdown_grace_ms: 5_000_000 } }), 'server.shutdown_grace_ms', /at most 3600000/);
  const lines = assertRefused(doc({ blue: { circuit_breaker: { reset_timeout_s: -1 } } }), 'endpoints.cars.deployments.blue.circuit_breaker.reset_timeout_s', /./);
  assert.equal(lines.filter((l) => l.startsWith('endpoints.cars.deployments.blue.circuit_breaker.reset_timeout_s')).length, 1, lines.join('\n'));
});

test('sticky.header must be an HTTP header name, as priority.header is', () => {
  assertRefused(doc({ cars: { sticky: { header: 'bad header' } } }), 'endpoints.cars.sticky.header', /HTTP header name/);
  assert.deepEqual(problems(doc({ cars: { sticky: { header: 'X-User-Id' } } })), []);
});

test('a mirror percent over 50 does not hide the other mirror rules: one run lists them all', () => {
  const lines = problems(doc({
    cars: {
      traffic: { blue: 90, green: 10 },
      mirror_traffic: { shadow: 60, other: 5, green: 10, ghost: 3 },
      deployments: { blue: { instances: ['http://10.0.0.11:5001'] }, green: { instances: ['http://10.0.0.21:5001'] }, shadow: { instances: ['http://10.0.0.31:5001'] }, other: { instances: ['http://10.0.0.41:5001'] } },
    },
  }));
  for (const want of [
    'endpoints.cars.mirror_traffic.shadow: at most 50',
    'endpoints.cars.mirror_traffic: mirror to one deployment only',
    'endpoints.cars.mirror_traffic.green: a deployment with live traffic cannot also be the mirror',
    'endpoints.cars.mirror_traffic.ghost: no deployment named ghost',
  ]) assert.ok(lines.some((l) => l.startsWith(want)), `want ${want} in:\n${lines.join('\n')}`);
});
