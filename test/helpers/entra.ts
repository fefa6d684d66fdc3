import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, SignJWT } from 'jose';
import type { Clock } from '../../gateway/clock.ts';

/** The tenant the stand-in's tokens belong to by default. */
export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
/** A second, real-looking tenant (not allowed by default in tests). */
export const OTHER_TENANT = '0b5e3c1a-7f2d-4e8b-9a61-3c4d5e6f7a8b';
/** The audience tokens carry by default. */
export const AUDIENCE = 'api://switchyard-test';

/** A key pair with the `kid` it is (or could be) published under. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** Generate an RSA-2048 or EC P-256 signing key. */
export function generateSigningKey(kind: 'RSA' | 'EC', kid: string = `${kind.toLowerCase()}-${randomUUID()}`): SigningKey {
  const pair = kind === 'RSA'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: kind === 'RSA' ? 'RS256' : 'ES256', ...pair };
}

/** How tokens are signed; every field has a sensible default. */
export interface SignOptions {
  /** Clock reading (ms) that `iat`/`nbf`/`exp` are relative to (default: the stand-in's clock). */
  now?: number;
  /** Lifetime in seconds (default 3600). */
  lifetimeS?: number;
  /** Sign with this key instead of the current signer (e.g. a foreign key). */
  key?: SigningKey;
  /** Header `kid` (default: the signing key's). */
  kid?: string;
  /** Header `alg` (default: the signing key's). */
  alg?: string;
  /** `v2` (default) or `v1` issuer format. */
  issuerVersion?: 'v1' | 'v2';
}

/**
 * What the stand-in does with requests: `up` answers, `down` = 503, `reset` = socket
 * destroyed, `garbage` = 200 with a body that is neither a key set nor a discovery
 * document, `hang` = the connection is accepted and the request read, but never answered
 * (until the mode changes back or the stand-in closes).
 */
export type StandInMode = 'up' | 'down' | 'reset' | 'garbage' | 'hang';

/** Which documents a {@link StandInEntra.setMode} applies to (default both). */
export type StandInDocument = 'all' | 'jwks' | 'discovery';

/** A stand-in Microsoft Entra ID over real loopback HTTP. */
export interface StandInEntra {
  /** `http://127.0.0.1:{port}` */
  readonly authority: string;
  /** Where the JWKS is served. */
  readonly jwksUri: string;
  /** Requests that reached the JWKS path (in any mode). */
  readonly jwksRequests: number;
  /** Requests that reached a discovery path (in any mode). */
  readonly discoveryRequests: number;
  /** The key new tokens are signed with. */
  readonly signer: SigningKey;
  /** Publish a new key and make it the signer; optionally unpublish all others. */
  rotate(opts?: { dropOld?: boolean; kind?: 'RSA' | 'EC' }): SigningKey;
  /** Publish an extra signing key without making it the signer. */
  publish(key: SigningKey): void;
  /** `true` → every request answers 503. */
  setDown(down: boolean): void;
  /** See {@link StandInMode}; `which` limits it to the JWKS or the discovery documents. */
  setMode(mode: StandInMode, which?: StandInDocument): void;
  /** Requests parked by `hang` and not yet answered. */
  readonly hanging: number;
  /** A signed token: defaults tid, aud, iss (v2), oid, roles, scp, iat/nbf/exp; `undefined` claim values remove the claim. */
  sign(claims?: Record<string, unknown>, opts?: SignOptions): Promise<string>;
  /** The v1 and v2 issuers of a tenant. */
  issuer(tenant: string, version?: 'v1' | 'v2'): string;
  close(): Promise<void>;
}

function publicJwk(key: SigningKey, use: 'sig' | 'enc' = 'sig'): Record<string, unknown> {
  // Entra's JWKS entries carry no `alg`; the verifier must take it from the token header.
  return { ...key.publicKey.export({ format: 'jwk' }), kid: key.kid, use };
}

/** Build a claims set from defaults plus overrides (an `undefined` override deletes the claim). */
function buildClaims(defaults: Record<string, unknown>, overrides: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** An `alg: none` token (no signature). */
export function unsignedToken(claims: Record<string, unknown>, kid = 'none'): string {
  const enc = (v: unknown): string => base64url.encode(JSON.stringify(v));
  return `${enc({ alg: 'none', typ: 'JWT', kid })}.${enc(claims)}.`;
}

/** An HS256 token whose HMAC secret is `secret` (e.g. a public key's PEM bytes). */
export async function signHs256(claims: Record<string, unknown>, secret: Uint8Array, kid: string): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid }).sign(secret);
}

/**
 * Start a stand-in Entra on 127.0.0.1 (port 0). It serves
 * `/{tenant}/v2.0/.well-known/openid-configuration` for any tenant and the key set at
 * `/discovery/v2.0/keys`: an RSA and an EC signing key, plus an `oct` key and a
 * `use: enc` key that a verifier must ignore.
 */
export async function startStandInEntra(opts: { now?: Clock } = {}): Promise<StandInEntra> {
  const clock = opts.now ?? Date.now;
  let signer = generateSigningKey('RSA', 'rsa-1');
  let published: SigningKey[] = [signer, generateSigningKey('EC', 'ec-1')];
  const encKey = generateSigningKey('RSA', 'enc-1');
  const octKey = { kty: 'oct', kid: 'oct-1', use: 'sig', k: base64url.encode(randomBytes(32)) };
  let jwksMode: StandInMode = 'up';
  let discoveryMode: StandInMode = 'up';
  /** Parked requests, released (answered as the mode then says) when their mode leaves `hang`. */
  const parked: { which: 'jwks' | 'discovery'; release: () => void }[] = [];
  let jwksRequests = 0;
  let discoveryRequests = 0;
  let authority = '';

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const discovery = /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/.exec(path);
    const isJwks = path === '/discovery/v2.0/keys';
    if (isJwks) jwksRequests += 1;
    if (discovery) discoveryRequests += 1;
    const which = isJwks ? 'jwks' : 'discovery';
    const respond = (): void => answer(req, res, isJwks, discovery, which === 'jwks' ? jwksMode : discoveryMode);
    if ((isJwks || discovery) && (which === 'jwks' ? jwksMode : discoveryMode) === 'hang') {
      const entry = { which, release: respond } as const;
      parked.push(entry);
      // A client that gave up (its deadline) is no longer waiting.
      res.on('close', () => {
        const i = parked.indexOf(entry);
        if (i >= 0) parked.splice(i, 1);
      });
      return;
    }
    respond();
  });

  function answer(
    req: IncomingMessage, res: ServerResponse, isJwks: boolean, discovery: RegExpExecArray | null, mode: StandInMode,
  ): void {
    if (res.destroyed) return;
    if (mode === 'reset') {
      req.socket.destroy();
      return;
    }
    const send = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (mode === 'down') return send(503, { error: 'temporarily_unavailable' });
    if (mode === 'garbage') return send(200, { hello: 'this is not a key set' });
    if (isJwks) {
      return send(200, { keys: [...published.map((k) => publicJwk(k)), publicJwk(encKey, 'enc'), octKey] });
    }
    if (discovery) {
      const tenant = discovery[1] ?? '';
      return send(200, {
        issuer: `${authority}/${tenant}/v2.0`,
        jwks_uri: `${authority}/discovery/v2.0/keys`,
        id_token_signing_alg_values_supported: ['RS256'],
      });
    }
    send(404, { error: 'not_found' });
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  authority = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function setMode(m: StandInMode, which: StandInDocument): void {
    if (which !== 'discovery') jwksMode = m;
    if (which !== 'jwks') discoveryMode = m;
    // Requests parked by `hang` are answered as the new mode says once it is not `hang`.
    for (const p of [...parked]) {
      if ((p.which === 'jwks' ? jwksMode : discoveryMode) === 'hang') continue;
      parked.splice(parked.indexOf(p), 1);
      p.release();
    }
  }

  const issuer = (tenant: string, version: 'v1' | 'v2' = 'v2'): string =>
    version === 'v1' ? `https://sts.windows.net/${tenant}/` : `${authority}/${tenant}/v2.0`;

  return {
    authority,
    jwksUri: `${authority}/discovery/v2.0/keys`,
    get jwksRequests() { return jwksRequests; },
    get discoveryRequests() { return discoveryRequests; },
    get signer() { return signer; },
    rotate({ dropOld = false, kind = 'RSA' } = {}) {
      signer = generateSigningKey(kind);
      published = dropOld ? [signer] : [...published, signer];
      return signer;
    },
    publish(key) {
      published = [...published, key];
    },
    setDown(down) {
      setMode(down ? 'down' : 'up', 'all');
    },
    setMode(m, which = 'all') {
      setMode(m, which);
    },
    get hanging() { return parked.length; },
    issuer,
    async sign(claims = {}, o = {}) {
      const key = o.key ?? signer;
      const iat = Math.floor((o.now ?? clock()) / 1000);
      const tid = 'tid' in claims && typeof claims.tid === 'string' ? claims.tid : TENANT;
      const payload = buildClaims({
        aud: AUDIENCE,
        iss: issuer(tid, o.issuerVersion),
        iat,
        nbf: iat,
        exp: iat + (o.lifetimeS ?? 3600),
        tid,
        oid: '00000000-0000-4000-8000-000000000001',
        sub: 'subject-1',
        azp: 'client-app-1',
        roles: ['Model.Invoke'],
        scp: 'user_impersonation',
        ver: o.issuerVersion === 'v1' ? '1.0' : '2.0',
      }, claims);
      return new SignJWT(payload)
        .setProtectedHeader({ alg: o.alg ?? key.alg, typ: 'JWT', kid: o.kid ?? key.kid })
        .sign(key.privateKey);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}
