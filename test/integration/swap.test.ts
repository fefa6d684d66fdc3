import assert from 'node:assert/strict';
import { test } from 'node:test';
import { killSummary, runHardKill, runSwapScenario, swapSummary } from '../../load-tests/swap.ts';

// Issue 10's acceptance test, the same scenario as `npm run test:swap` (load-tests/swap.ts):
// a real `switchyard serve` process under constant keep-alive load while traffic shifts,
// the config reloads, instances stop and join, and the gateway itself restarts rolling.

test('swaps, reloads, a graceful instance stop, a new instance and a rolling restart under load: no request fails', { timeout: 180_000 }, async (t) => {
  const r = await runSwapScenario({ minRequests: 20_000 });
  const summary = swapSummary(r);
  t.diagnostic(summary);
  assert.ok(r.total.requests >= 20_000, `at least 20,000 requests (${r.total.requests})`);
  assert.equal(r.total.non2xx, 0, `no non-2xx response\n${summary}`);
  assert.equal(r.total.errors, 0, `no socket or request error\n${summary}`);
  for (const c of r.checks) assert.ok(c.ok, `${c.name}: ${c.detail}`);

  // Each step did what it says (the traffic really moved, the new instance really served).
  const phase = (prefix: string) => r.phases.find((p) => p.name.startsWith(prefix))!;
  assert.equal(phase('warm-up').byDeployment.get('green') ?? 0, 0, 'green at 0 % gets nothing');
  const shift = phase('(a)');
  assert.ok((shift.byDeployment.get('blue') ?? 0) > 0 && (shift.byDeployment.get('green') ?? 0) > 0, 'both served during the shift');
  assert.ok((phase('(d)').byInstance.get('green-2') ?? 0) > 0, 'green-2 served once ready');
  const afterStop = r.phases.slice(r.phases.indexOf(phase('(c)')) + 1);
  assert.equal(afterStop.reduce((n, p) => n + (p.byInstance.get('blue-1') ?? 0), 0), 0, 'blue-1 served nothing after its stop');
  const restart = phase('(e)');
  assert.ok(restart.ok > 0, 'requests were served through the rolling restart');
});

test('one of three instances hard-killed under load: only requests the gateway had sent to it before the ejection fail', { timeout: 60_000 }, async (t) => {
  const k = await runHardKill();
  const summary = killSummary(k);
  t.diagnostic(summary);
  assert.ok(k.servedByKilled > 0, 'the killed instance was serving before the kill');
  assert.notEqual(k.ejectionMs, undefined, `the killed instance was ejected\n${summary}`);
  assert.ok(k.ejectionMs! < 2_000, `ejected within 2 s (${k.ejectionMs} ms)`);
  assert.equal(k.failedOther, 0, `every failure was a request in flight on (or sent to) the killed instance before its ejection\n${summary}`);
  assert.equal(k.failedSentAfterEjection, 0, `nothing sent after the ejection failed\n${summary}`);
  assert.ok(k.failed.length <= k.connections, `at most one failure per load connection (${k.failed.length})`);
  // A refused connect is retried on another instance: the only failures are the resets of
  // exchanges that had reached the dead instance (502), never a connect error or a 503.
  assert.deepEqual(Object.keys(k.statuses).filter((s) => s !== '502'), [], `failures: ${JSON.stringify(k.statuses)}`);
  const survivors = Object.entries(k.afterKillByInstance);
  assert.deepEqual(survivors.map(([i]) => i).sort(), ['blue-2', 'blue-3'], 'the two others took the load after the kill');
});
