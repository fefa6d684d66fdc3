import assert from 'node:assert/strict';
import { rateLimitFactory } from '../../../../policies/rate-limit/rate-limit.ts';
import type { Policy, PolicyDeps, Verdict } from '../../../../policies/policy.ts';
import type { Principal } from '../../../../policies/principal.ts';
import { FakeContext, fakeDeps, scopeOf } from '../../../helpers/policy.ts';

/** What the rate-limit tests share: a config with a limit, and decisions read back as plain data. */

export const doc = (rateLimit?: Record<string, unknown>): Record<string, unknown> => ({
  endpoints: {
    cars: {
      keys: { primary: 'k-rate-limit-1' },
      deployments: { blue: { instances: ['http://127.0.0.1:1'] } },
      ...(rateLimit ? { rate_limit: rateLimit } : {}),
    },
  },
});

/** The policy endpoint `cars` compiles to with this `rate_limit`. */
export function policy(rateLimit: Record<string, unknown>, deps: PolicyDeps = fakeDeps()): Policy {
  const p = rateLimitFactory.create(scopeOf(doc(rateLimit)), deps);
  assert.ok(p, 'a rate_limit section compiles to a policy');
  return p;
}

/** One decision: what it said and the headers it added. */
export interface Decision {
  readonly kind: 'continue' | 'reject';
  readonly code: string | undefined;
  readonly reason: string | undefined;
  readonly retryAfter: string | undefined;
  readonly headers: Record<string, string>;
}

type Init = ConstructorParameters<typeof FakeContext>[0];

function read(v: Verdict, ctx: FakeContext): Decision {
  const headers = Object.fromEntries(ctx.added);
  if (v.kind === 'continue') return { kind: 'continue', code: undefined, reason: undefined, retryAfter: undefined, headers };
  return { kind: 'reject', code: v.error.code, reason: v.reason, retryAfter: v.error.headers?.['retry-after'], headers };
}

/** One synchronous decision (the local path never returns a promise). */
export function decide(p: Policy, init: Init = {}): Decision {
  const ctx = new FakeContext(init);
  const v = p.evaluate(ctx);
  assert.ok(!(v instanceof Promise), 'the local path is synchronous');
  return read(v, ctx);
}

/** One decision, awaited. */
export async function decideAsync(p: Policy, init: Init = {}): Promise<Decision> {
  const ctx = new FakeContext(init);
  return read(await p.evaluate(ctx), ctx);
}

/** Admissions out of `n` requests at one instant. */
export function admitted(p: Policy, n: number, init: Init = {}): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (decide(p, init).kind === 'continue') ok++;
  return ok;
}

export const key = (slot: string): Principal => ({ type: 'key', id: slot });
export const token = (oid: string): Principal => ({ type: 'aad_token', id: oid, tenant: 't' });
