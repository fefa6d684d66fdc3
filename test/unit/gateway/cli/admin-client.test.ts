import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { AdminClient } from '../../../../gateway/cli/admin-client.ts';

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
