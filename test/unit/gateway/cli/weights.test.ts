import assert from 'node:assert/strict';
import { test } from 'node:test';
import { changesNothing } from '../../../../gateway/cli/commands/traffic.ts';
import { formatSplit, fullSplit, mirrorPatch, parseWeights, sumError, trafficPatch } from '../../../../gateway/cli/weights.ts';

test('DEP=W arguments: whole numbers 0..max, each name once; anything else names the argument at fault', () => {
  assert.deepEqual(parseWeights(['blue=90', 'green=10'], 100, 'weight'), { ok: true, value: [['blue', 90], ['green', 10]] });
  assert.deepEqual(parseWeights(['blue=0'], 100, 'weight'), { ok: true, value: [['blue', 0]] });
  const bad: [string[], RegExp][] = [
    [['blue'], /^"blue" is not DEPLOYMENT=WEIGHT \(e\.g\. blue=90\)$/],
    [['=90'], /is not DEPLOYMENT=WEIGHT/],
    [['blue=ninety'], /^blue=ninety: the weight must be a whole number from 0 to 100$/],
    [['blue=101'], /from 0 to 100/],
    [['blue=-1'], /from 0 to 100/],
    [['blue=9.5'], /from 0 to 100/],
    [['blue='], /from 0 to 100/],
    [['blue=1e2'], /from 0 to 100/],
    [['blue=50', 'blue=50'], /^blue is given twice$/],
  ];
  for (const [args, pattern] of bad) {
    const r = parseWeights(args, 100, 'weight');
    assert.ok(!r.ok, args.join(' '));
    assert.match(r.error, pattern, args.join(' '));
  }
  const p = parseWeights(['shadow=51'], 50, 'percent');
  assert.ok(!p.ok && /the percent must be a whole number from 0 to 50/.test(p.error));
});

const cars = {
  deployments: { blue: {}, green: {}, shadow: {} },
  traffic: { blue: 100 },
  mirror_traffic: { shadow: 10 },
};

test('traffic: named weights, 0 for every other weighted deployment; the sum and the names are checked', () => {
  assert.equal(sumError([['blue', 90], ['green', 10]]), undefined);
  assert.equal(sumError([['blue', 0]]), undefined, 'sum 0 is allowed (pinned requests only)');
  assert.equal(sumError([['blue', 90]]), 'the weights must sum to 100 (or 0), got 90; deployments not named get 0');

  assert.deepEqual(trafficPatch('cars', cars, [['green', 100]]), { ok: true, value: { traffic: { blue: 0, green: 100 } } });
  assert.deepEqual(trafficPatch('cars', cars, [['blue', 90], ['green', 10]]), { ok: true, value: { traffic: { blue: 90, green: 10 } } });
  const unknown = trafficPatch('cars', cars, [['blue', 90], ['purple', 10]]);
  assert.deepEqual(unknown, { ok: false, error: 'endpoint cars has no deployment named "purple" (it has: blue, green, shadow)' });
  const sum = trafficPatch('cars', cars, [['blue', 90]]);
  assert.ok(!sum.ok && /sum to 100/.test(sum.error));
  const mirrored = trafficPatch('cars', cars, [['blue', 90], ['shadow', 10]]);
  assert.ok(!mirrored.ok && /^shadow is the mirror target .*switchyard mirror cars --off/.test(mirrored.error));
});

test('mirror: one target, not live, others set to 0; no weights (--off) sets every share to 0', () => {
  assert.deepEqual(mirrorPatch('cars', cars, [['green', 20]]), { ok: true, value: { mirror_traffic: { shadow: 0, green: 20 } } });
  assert.deepEqual(mirrorPatch('cars', cars, []), { ok: true, value: { mirror_traffic: { shadow: 0 } } });
  assert.deepEqual(mirrorPatch('cars', cars, [['shadow', 0]]), { ok: true, value: { mirror_traffic: { shadow: 0 } } });
  const live = mirrorPatch('cars', cars, [['blue', 10]]);
  assert.ok(!live.ok && /^blue has live traffic \(100%\); a deployment with live traffic cannot also be the mirror/.test(live.error));
  // Stopping a mirror on a live deployment is not refused (0 is not a mirror).
  assert.ok(mirrorPatch('cars', cars, [['blue', 0]]).ok);
  const two = mirrorPatch('cars', cars, [['green', 10], ['shadow', 10]]);
  assert.ok(!two.ok && /one deployment only/.test(two.error));
  const unknown = mirrorPatch('cars', cars, [['nope', 10]]);
  assert.ok(!unknown.ok && /has no deployment named "nope"/.test(unknown.error));
});

test('the split printed names every deployment, 0% included, in the config\'s order', () => {
  assert.deepEqual(fullSplit(cars, 'traffic'), { blue: 100, green: 0, shadow: 0 });
  assert.equal(formatSplit(fullSplit({ deployments: { blue: {}, green: {} }, traffic: { green: 10, blue: 90 } }, 'traffic')), 'blue 90%, green 10%');
  assert.equal(formatSplit({}), 'no deployments');
});

test('a patch that sets every share to what it is changes nothing (an absent share is 0), so it is not written', () => {
  assert.ok(changesNothing(cars, { traffic: { blue: 100, green: 0 } }));
  assert.ok(changesNothing(cars, { mirror_traffic: { shadow: 10 } }));
  assert.ok(changesNothing({}, { mirror_traffic: {} }));
  assert.ok(!changesNothing(cars, { traffic: { blue: 90, green: 10 } }));
  assert.ok(!changesNothing(cars, { mirror_traffic: { shadow: 0 } }));
});
