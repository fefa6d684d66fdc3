import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AdminClient, AdminError } from '../../../../gateway/cli/admin-client.ts';

test('the admin client asks for /admin/... under the base URL, never //admin (with or without a trailing slash or a prefix)', async () => {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push(req.url ?? '');
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"version":"v","endpoints":[]}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  try {
    for (const url of [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}/`, `http://127.0.0.1:${port}/gw/`]) {
      await new AdminClient({ url, key: 'admin-key-0123456789' }).endpoints();
    }
    assert.deepEqual(paths, ['/admin/endpoints', '/admin/endpoints', '/gw/admin/endpoints']);
  } finally {
    server.close();
  }
});

test('editEndpoint sends the method, If-Match, ?dry_run=true and the JSON body; a 400 carries every field error, printable', async () => {
  const seen: { method: string; url: string; ifMatch: string | undefined; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', ifMatch: req.headers['if-match'], body });
      if (req.method === 'PATCH') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: {
          code: 'InvalidConfig', message: 'The edit is not a valid config; nothing changed.', request_id: 'r1',
          details: [{ path: 'endpoints.cars.traffic', message: 'values must sum to 100 or 0, got 90' }, { path: 'x\u001b[2J', message: 'y' }, { nonsense: true }],
        } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"dry_run":true,"before":null,"after":{}}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  const client = new AdminClient({ url: `http://127.0.0.1:${port}`, key: 'admin-key-0123456789' });
  try {
    const r = await client.editEndpoint<{ dry_run: boolean }>('PUT', 'my cars', { body: { traffic: {} }, ifMatch: '"e1"', dryRun: true });
    assert.equal(r.body.dry_run, true);
    await client.editEndpoint('DELETE', 'cars');
    const err = await client.editEndpoint('PATCH', 'cars', { body: { traffic: { blue: 90 } } }).then(() => undefined, (e: unknown) => e);
    assert.ok(err instanceof AdminError);
    assert.equal(err.status, 400);
    assert.equal(err.code, 'InvalidConfig');
    assert.match(err.message, /^PATCH \/admin\/endpoints\/cars at \S+: 400 InvalidConfig: The edit is not a valid config; nothing changed\. \(request id r1\)$/);
    assert.deepEqual(err.details, [{ path: 'endpoints.cars.traffic', message: 'values must sum to 100 or 0, got 90' }, { path: 'x?[2J', message: 'y' }]);
    assert.deepEqual(seen, [
      { method: 'PUT', url: '/admin/endpoints/my%20cars?dry_run=true', ifMatch: '"e1"', body: '{"traffic":{}}' },
      { method: 'DELETE', url: '/admin/endpoints/cars', ifMatch: undefined, body: '' },
      { method: 'PATCH', url: '/admin/endpoints/cars', ifMatch: undefined, body: '{"traffic":{"blue":90}}' },
    ]);
  } finally {
    server.close();
  }
});
