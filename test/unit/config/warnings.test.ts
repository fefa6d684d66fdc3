import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssues, parseConfigText } from '../../../config/load.ts';

/**
 * Issue 7 item 14: every key the schema accepts but this version does not enforce warns,
 * when (and only when) the user wrote it. The document is SPEC §2's example, with the
 * deployments its traffic and mirror name and a real digest.
 */
const SPEC_EXAMPLE = `
server:
  listen: { host: 0.0.0.0, port: 8080 }
  private_listen: { host: 10.1.2.3, port: 8081 }
  admin_listen: { host: 127.0.0.1, port: 9090 }
  host_suffix: .inference.example.com
  trusted_proxies: [10.0.0.0/8]
  max_body_bytes: 10485760
  request_buffering_bytes: 1048576
  client_header_timeout_ms: 30000
  client_body_timeout_ms: 30000
  shutdown_grace_ms: 30000
  load_shedding: { max_event_loop_delay_ms: 100 }
state:
  redis_url: redis://127.0.0.1:6379
  on_redis_error: local
entra:
  authority: https://login.microsoftonline.com
  tenants: [00000000-0000-0000-0000-000000000000]
  audiences: [https://ml.azure.com]
  clock_skew_s: 60
  fetch_timeout_ms: 2000
admin:
  keys: [\${SWITCHYARD_ADMIN_KEY}]
  entra_roles: [Switchyard.Admin]
endpoints:
  cars:
    auth_mode: key
    keys: { primary: "\${CARS_KEY_1}", secondary: "sha256:${'0f'.repeat(32)}" }
    roles: [Scorer]
    public_network_access: enabled
    allowed_networks: [10.0.0.0/8]
    traffic: { blue: 90, green: 10 }
    mirror_traffic: { shadow: 10 }
    mirror_max_body_bytes: 1048576
    mirror_compare: { noise_baseline: false, number_tolerance: 1.0e-6 }
    sticky: { header: x-user-id }
    rate_limit: { requests_per_second: 500, burst: 1000, per: endpoint }
    priority: { header: x-priority, default: standard, callers: { secondary: sheddable } }
    deployments:
      blue:
        instances: [http://10.0.0.11:5001, http://10.0.0.12:5001]
        scoring_route: /score
        request_settings: { request_timeout_ms: 5000, max_concurrent_requests_per_instance: 16, max_queue_wait_ms: 500 }
        readiness_probe: { path: /, initial_delay: 0, period: 5, timeout: 2, success_threshold: 1, failure_threshold: 3 }
        outlier_detection: { consecutive_failures: 5, base_ejection_time_s: 30, max_ejection_percent: 50 }
        circuit_breaker: { error_threshold_percent: 50, volume_threshold: 20, window_s: 10, reset_timeout_s: 30 }
      green: { instances: [http://10.0.0.21:5001] }
      shadow: { instances: [http://10.0.0.31:5001] }
`;
const ENV = { SWITCHYARD_ADMIN_KEY: 'admin-key-1-0123456789', CARS_KEY_1: 'cars-key-1-0123456789' };
test('the SPEC §2 example loads without a warning: every key in it is enforced', () => {
  const r = parseConfigText(SPEC_EXAMPLE, ENV);
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.issues));
  assert.deepEqual(r.warnings, []);
});

test('the keys SPEC §2 lists get SPEC\'s shapes and defaults', () => {
  const r = parseConfigText(SPEC_EXAMPLE
    .replace('{ noise_baseline: false, number_tolerance: 1.0e-6 }', '{}')
    .replace('{ header: x-priority, default: standard, callers: { secondary: sheddable } }', '{}')
    .replace('{ error_threshold_percent: 50, volume_threshold: 20, window_s: 10, reset_timeout_s: 30 }', '{}')
    .replace('{ max_event_loop_delay_ms: 100 }', '{}'), ENV);
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.issues));
  const cars = r.config.endpoints.cars;
  assert.deepEqual(cars?.mirror_compare, { noise_baseline: false, number_tolerance: 1e-6 });
  assert.deepEqual(cars?.priority, { header: 'x-priority', default: 'standard', callers: {} });
  assert.deepEqual(cars?.deployments.blue?.circuit_breaker, { error_threshold_percent: 50, volume_threshold: 20, window_s: 10, reset_timeout_s: 30 });
  assert.deepEqual(r.config.server.load_shedding, { max_event_loop_delay_ms: 100 });
  // And their values are checked like any other.
  const bad = parseConfigText(SPEC_EXAMPLE.replace('default: standard', 'default: urgent').replace('error_threshold_percent: 50', 'error_threshold_percent: 150'), ENV);
  assert.ok(!bad.ok);
  const lines = formatIssues(bad.issues).split('\n');
  assert.ok(lines.some((l) => l.startsWith('endpoints.cars.priority.default: ')), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('endpoints.cars.deployments.blue.circuit_breaker.error_threshold_percent: ')), lines.join('\n'));
});

test('defaults do not warn: only what the user wrote', () => {
  const r = parseConfigText(`
endpoints:
  cars:
    keys: { primary: cars-key-1-0123456789 }
    traffic: { blue: 100 }
    deployments:
      blue: { instances: [http://10.0.0.11:5001], request_settings: { request_timeout_ms: 2000 } }
`, {});
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.issues));
  assert.deepEqual(r.warnings, []);
  // The parsed config has the defaults filled in; the warnings are from the document.
  assert.equal(r.config.endpoints.cars?.deployments.blue?.request_settings.max_queue_wait_ms, 500);
});


test('a priority caller that can never match on a key-only endpoint warns, naming its path', () => {
  const r = parseConfigText(`
endpoints:
  cars:
    keys: { primary: cars-key-1-0123456789 }
    traffic: { blue: 100 }
    priority: { callers: { primery: critical, secondary: sheddable } }
    deployments: { blue: { instances: [http://10.0.0.11:5001] } }
  vans:
    auth_mode: aad_token
    traffic: { blue: 100 }
    priority: { callers: { Batch.Scorer: sheddable } }
    deployments: { blue: { instances: [http://10.0.0.12:5001] } }
entra: { tenants: [t1], audiences: [a1] }
`, {});
  assert.ok(r.ok, r.ok ? '' : formatIssues(r.issues));
  assert.deepEqual(r.warnings, ['endpoints.cars.priority.callers.primery: matches no caller (with auth_mode key the callers are primary and secondary)']);
});
