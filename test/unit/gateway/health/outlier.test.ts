import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HealthRegistry, type InstanceHealth } from '../../../../gateway/health/health-registry.ts';
import { MAX_EJECTION_MS, OutlierDetector } from '../../../../gateway/health/outlier.ts';
import { manualClock } from '../../../helpers/clock.ts';

function setup(n: number, settings = { consecutive_failures: 3, base_ejection_time_s: 10, max_ejection_percent: 50 }) {
  const registry = new HealthRegistry();
  const instances = Array.from({ length: n }, (_, i) => ({ health: registry.get(`http://10.0.0.${i + 1}:5001`) }));
  const ejections: { origin: string; ms: number; times: number }[] = [];
  const changes: string[] = [];
  registry.listen((h) => changes.push(h.origin));
  const d = new OutlierDetector(settings, instances, (h, ms, times) => ejections.push({ origin: h.origin, ms, times }));
  return { d, h: instances.map((i) => i.health), ejections, changes, clock: manualClock() };
}

const fail = (d: OutlierDetector, h: InstanceHealth, now: number, times: number): void => {
  for (let i = 0; i < times; i++) d.failed(h, now);
};

test('consecutive failures eject an instance for base_ejection_time_s; it returns by itself', () => {
  const { d, h, ejections, changes, clock } = setup(3);
  const now = clock.now();
  fail(d, h[0]!, now, 2);
  assert.ok(h[0]!.takesTraffic(now), 'two failures: still in');
  d.failed(h[0]!, now);
  assert.ok(!h[0]!.takesTraffic(now));
  assert.deepEqual(ejections, [{ origin: h[0]!.origin, ms: 10_000, times: 1 }]);
  assert.deepEqual(changes, [h[0]!.origin], 'listeners hear the ejection');
  assert.ok(!h[0]!.takesTraffic(now + 9_999));
  assert.ok(h[0]!.takesTraffic(now + 10_000), 'back when its time is up');
});

test('a success ends the streak: failures must be consecutive', () => {
  const { d, h, ejections, clock } = setup(3);
  const now = clock.now();
  fail(d, h[0]!, now, 2);
  d.succeeded(h[0]!, now);
  fail(d, h[0]!, now, 2);
  assert.deepEqual(ejections, []);
});

test('each ejection in a row lasts longer (base × times, capped); good behaviour brings the multiplier down', () => {
  const { d, h, ejections, clock } = setup(2, { consecutive_failures: 1, base_ejection_time_s: 100, max_ejection_percent: 50 });
  let now = clock.now();
  d.failed(h[0]!, now);
  now += 100_000;
  d.failed(h[0]!, now);
  now += 200_000;
  d.failed(h[0]!, now);
  now += 300_000;
  d.failed(h[0]!, now);
  assert.deepEqual(ejections.map((e) => e.ms), [100_000, 200_000, 300_000, MAX_EJECTION_MS], 'capped at 300 s');
  now += MAX_EJECTION_MS;
  // Serving well for a base period after its return lowers the multiplier by one each time.
  d.succeeded(h[0]!, now + 100_000);
  assert.equal(h[0]!.timesEjected, 3);
  d.succeeded(h[0]!, now + 200_000);
  assert.equal(h[0]!.timesEjected, 2);
});

test('never more than max_ejection_percent of the deployment at once (at least one may go)', () => {
  const { d, h, ejections, clock } = setup(3, { consecutive_failures: 1, base_ejection_time_s: 10, max_ejection_percent: 50 });
  const now = clock.now();
  for (const x of h) d.failed(x, now);
  assert.equal(ejections.length, 1, '50% of 3 is one instance');
  const two = setup(4, { consecutive_failures: 1, base_ejection_time_s: 10, max_ejection_percent: 50 });
  for (const x of two.h) two.d.failed(x, now);
  assert.equal(two.ejections.length, 2);
  const none = setup(2, { consecutive_failures: 1, base_ejection_time_s: 10, max_ejection_percent: 0 });
  for (const x of none.h) none.d.failed(x, now);
  assert.equal(none.ejections.length, 0, '0% turns ejection off');
  const single = setup(1, { consecutive_failures: 1, base_ejection_time_s: 10, max_ejection_percent: 10 });
  single.d.failed(single.h[0]!, now);
  assert.equal(single.ejections.length, 1, 'a lone failing instance is ejected: no panic mode');
});
