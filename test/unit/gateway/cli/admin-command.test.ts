import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdminClient, AdminError } from '../../../../gateway/cli/admin-client.ts';
import { EXIT, explain, fail } from '../../../../gateway/cli/admin-command.ts';
import type { Command } from '../../../../gateway/cli/command.ts';

const cmd: Command = { name: 'traffic', args: '', summary: '', run: () => Promise.resolve(0) };

/** What `fail` writes to stderr, and its exit code. */
function failed(err: unknown): { code: number; stderr: string } {
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => {
    stderr += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: fail(cmd, err), stderr };
  } finally {
    process.stderr.write = write;
  }
}

test('a stale ETag (412) says someone changed the endpoint and to run again: exit 3, apart from other failures', async () => {
  // Nothing listens there: a 412 is explained without asking the gateway anything.
  const client = new AdminClient({ url: 'http://127.0.0.254:9' });
  const stale = new AdminError('http', 'PATCH /admin/endpoints/cars at x: 412 PreconditionFailed: ...', 412, 'PreconditionFailed');
  const r = failed(await explain(client, stale, 'cars'));
  assert.equal(r.code, EXIT.conflict);
  assert.equal(r.stderr, 'switchyard traffic: endpoint cars was changed by someone else since it was read (412 PreconditionFailed); nothing changed: run the command again\n');
});

test('a refused edit prints one line, then every field error; a bad environment is a usage error (2); the rest exit 1', () => {
  const invalid = new AdminError('http', 'PUT /admin/endpoints/cars at x: 400 InvalidConfig: nothing changed', 400, 'InvalidConfig', [
    { path: 'endpoints.cars.traffic', message: 'values must sum to 100 or 0, got 90' },
    { path: 'endpoints.cars.deployments.green', message: 'has live traffic (10%); set it to 0 first' },
  ]);
  const r = failed(invalid);
  assert.equal(r.code, EXIT.failed);
  assert.equal(r.stderr, 'switchyard traffic: PUT /admin/endpoints/cars at x: 400 InvalidConfig: nothing changed\n'
    + '  endpoints.cars.traffic: values must sum to 100 or 0, got 90\n'
    + '  endpoints.cars.deployments.green: has live traffic (10%); set it to 0 first\n');
  assert.equal(failed(new AdminError('config', 'SWITCHYARD_ADMIN_URL is not a URL')).code, EXIT.usage);
  assert.equal(failed(new AdminError('unreachable', 'cannot reach')).code, EXIT.failed);
  assert.equal(failed(new Error('boom')).code, EXIT.failed);
  // Server-sent text never drives the terminal.
  assert.equal(failed(new AdminError('http', 'x \u001b[2J')).stderr, 'switchyard traffic: x ?[2J\n');
});
