/**
 * A stand-in Entra ID for the bench: OIDC discovery and a JWKS on loopback, plus
 * `GET /token` minting a signed RS256 token (1 h) for the bench's JWT variant. Keys are
 * made with node:crypto at start; nothing leaves the machine.
 *
 *   node load-tests/entra-stand-in.ts --port 5100 [--tenant T --audience A --role R]
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { SignJWT } from 'jose';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '5100' },
    host: { type: 'string', default: '127.0.0.1' },
    tenant: { type: 'string', default: '11111111-2222-4333-8444-555555555555' },
    audience: { type: 'string', default: 'api://switchyard-bench' },
    role: { type: 'string', default: 'Scorer' },
  },
});
const { tenant: TENANT, audience: AUDIENCE, role: ROLE } = values;
const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = randomUUID();
const base = `http://${values.host}:${values.port}`;
const jwks = JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', kty: 'RSA' }] });

createServer((req, res) => {
  const url = req.url ?? '/';
  const send = (status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  if (url.endsWith('/v2.0/.well-known/openid-configuration')) {
    const tenant = url.split('/')[1] ?? '';
    return send(200, JSON.stringify({ issuer: `${base}/${tenant}/v2.0`, jwks_uri: `${base}/discovery/v2.0/keys` }));
  }
  if (url === '/discovery/v2.0/keys') return send(200, jwks);
  if (url === '/token') {
    void new SignJWT({ tid: TENANT, oid: randomUUID(), roles: [ROLE] })
      .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
      .setIssuer(`${base}/${TENANT}/v2.0`)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setNotBefore('0s')
      .setExpirationTime('1h')
      .sign(privateKey)
      .then((t) => send(200, JSON.stringify({ token: t })));
    return;
  }
  send(404, '{}');
}).listen(Number(values.port), values.host, () => {
  process.stdout.write(`entra stand-in on ${base}\n`);
});
