import assert from 'node:assert/strict';
import { test } from 'node:test';
import { requestCounts } from '../../../../gateway/cli/commands/status-counters.ts';

test('a shadow deployment counts the copies sent to it (not skipped ones), apart from client requests', () => {
  const counts = requestCounts([
    'switchyard_requests_total{endpoint="cars",deployment="blue",code="200",termination="completed"} 90',
    'switchyard_requests_total{endpoint="cars",deployment="blue",code="502",termination="upstream_reset"} 10',
    'switchyard_mirror_requests_total{endpoint="cars",deployment="shadow",outcome="agree"} 7',
    'switchyard_mirror_requests_total{endpoint="cars",deployment="shadow",outcome="timeout"} 2',
    'switchyard_mirror_requests_total{endpoint="cars",deployment="shadow",outcome="skipped_budget"} 50',
  ].join('\n'));
  assert.deepEqual(counts.get('cars\0blue'), { requests: 100, errors: 10 });
  assert.deepEqual(counts.get('\0mirror\0cars\0shadow'), { requests: 9, errors: 2 });
  assert.equal(counts.get('cars\0shadow'), undefined, 'copies are not client requests of the endpoint');
});
