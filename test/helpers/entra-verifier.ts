import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { createEntraVerifier } from '../../policies/auth/jwt/entra-verifier.ts';
import type { EntraVerifier, VerifyResult } from '../../policies/auth/jwt/entra-verifier.ts';
import { defaultFetchJson, JwksCacheRegistry } from '../../policies/auth/jwt/jwks-cache.ts';
import type { FetchJson, JwksCache } from '../../policies/auth/jwt/jwks-cache.ts';
import { manualClock } from './clock.ts';
import type { ManualClock } from './clock.ts';
import { AUDIENCE, startStandInEntra, TENANT } from './entra.ts';
import type { StandInEntra } from './entra.ts';

export const HOUR_MS = 60 * 60 * 1000;

export interface Setup {
  clock: ManualClock;
  idp: StandInEntra;
  verifier: EntraVerifier;
  /** The JWKS cache the verifier uses for the stand-in's key set. */
  keys: () => JwksCache;
  warnings: string[];
}

/** A fresh stand-in Entra, manual clock and verifier per test, so counters are the test's own. */
export async function setup(
  t: TestContext,
  o: { clockSkewS?: number; tenants?: string[]; fetchJson?: FetchJson; fetchTimeoutMs?: number } = {},
): Promise<Setup> {
  const clock = manualClock();
  const idp = await startStandInEntra({ now: clock.now });
  t.after(() => idp.close());
  const warnings: string[] = [];
  const logger = { warn: (_f: Record<string, unknown>, msg: string) => { warnings.push(msg); } };
  const fetchJson = o.fetchJson ?? defaultFetchJson;
  const jwks = new JwksCacheRegistry({ now: clock.now, fetchJson, logger });
  const verifier = createEntraVerifier({
    authority: `${idp.authority}/`, // trailing slash on purpose: must be normalised
    tenants: o.tenants ?? [TENANT],
    audiences: ['api://other', AUDIENCE],
    clockSkewS: o.clockSkewS ?? 60,
    now: clock.now,
    fetchJson,
    jwks,
    ...(o.fetchTimeoutMs === undefined ? {} : { fetchTimeoutMs: o.fetchTimeoutMs }),
  });
  return { clock, idp, verifier, keys: () => jwks.get(idp.jwksUri), warnings };
}

export function assertRejected(r: VerifyResult, status: 401 | 403, reason: RegExp): void {
  assert.equal(r.ok, false, 'token must be rejected');
  if (r.ok) return;
  assert.equal(r.status, status);
  assert.match(r.reason, reason);
}

export function assertAccepted(r: VerifyResult): void {
  assert.equal(r.ok, true, r.ok ? '' : `rejected: ${r.reason}`);
}
