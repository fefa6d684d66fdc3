import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Pool } from 'undici';
import { SmoothWeightedSplit } from '../../gateway/routing/split.ts';
import { startGateway, startUpstream, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';

function picks(weights: Record<string, number>, n: number): (string | undefined)[] {
  const s = new SmoothWeightedSplit(weights);
  return Array.from({ length: n }, () => s.next());
}

function count(xs: readonly (string | undefined)[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const x of xs) c[String(x)] = (c[String(x)] ?? 0) + 1;
  return c;
}

/** Every window of `sum(weights)` consecutive picks holds each name exactly `weight` times. */
function assertExactWindows(weights: Record<string, number>): void {
  const total = Object.values(weights).reduce((a, b) => a + b, 0);
  const seq = picks(weights, total * 7 + 13);
  const expected = Object.fromEntries(Object.entries(weights).filter(([, w]) => w > 0));
  for (let i = 0; i + total <= seq.length; i++) {
    assert.deepEqual(count(seq.slice(i, i + total)), expected, `window starting at pick ${i}`);
  }
}

describe('SmoothWeightedSplit', () => {
  test('90/10: exactly 90 blue and 10 green in every window of 100 picks', () => {
    assertExactWindows({ blue: 90, green: 10 });
  });

  test('90/10 is smooth: green comes every 10th pick, never in bursts', () => {
    const seq = picks({ blue: 90, green: 10 }, 1000);
    const greens = seq.flatMap((x, i) => (x === 'green' ? [i] : []));
    assert.equal(greens.length, 100);
    for (let i = 1; i < greens.length; i++) assert.equal(greens[i]! - greens[i - 1]!, 10, `gap before green #${i}`);
  });

  test('three-way splits are exact over every window', () => {
    assertExactWindows({ a: 50, b: 30, c: 20 });
    assertExactWindows({ a: 1, b: 1, c: 98 });
    assertExactWindows({ a: 33, b: 33, c: 34 });
  });

  test('a zero weight is never picked', () => {
    const seq = picks({ blue: 100, green: 0 }, 300);
    assert.deepEqual(count(seq), { blue: 300 });
    assert.equal(new SmoothWeightedSplit({ blue: 100, green: 0 }).empty, false);
  });

  test('all zero (or no weights) yields undefined and is empty', () => {
    for (const w of [{ blue: 0, green: 0 }, {}] as Record<string, number>[]) {
      const s = new SmoothWeightedSplit(w);
      assert.equal(s.empty, true);
      for (let i = 0; i < 5; i++) assert.equal(s.next(), undefined);
    }
  });
});

describe('traffic split through a real gateway', () => {
  const KEY = 'split-test-key';
  let blue: TestUpstream;
  let green: TestUpstream;
  let gw: TestGateway;

  before(async () => {
    blue = await startUpstream('blue');
    green = await startUpstream('green');
    gw = await startGateway({
      logging: { access_log: false },
      endpoints: {
        cars: {
          keys: { primary: KEY },
          traffic: { blue: 90, green: 10 },
          deployments: { blue: { instances: [blue.url] }, green: { instances: [green.url] } },
        },
      },
    });
  });
  after(async () => {
    await gw.close();
    await blue.close();
    await green.close();
  });

  test('10,000 requests split 90/10 (±1%), and the header names the deployment that answered', async () => {
    const N = 10_000;
    const CONCURRENCY = 32;
    const pool = new Pool(gw.url, { connections: CONCURRENCY, pipelining: 1 });
    const byHeader: Record<string, number> = {};
    const mismatches: string[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < N) {
        next++;
        const r = await pool.request({ path: '/endpoints/cars/score', method: 'POST', headers: { authorization: `Bearer ${KEY}` }, body: '{}' });
        const body = (await r.body.json()) as { deployment: string };
        assert.equal(r.statusCode, 200);
        const header = String(r.headers['azureml-model-deployment']);
        byHeader[header] = (byHeader[header] ?? 0) + 1;
        if (header !== body.deployment) mismatches.push(`${header} answered by ${body.deployment}`);
      }
    };
    try {
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    } finally {
      await pool.close();
    }
    assert.deepEqual(mismatches, []);
    assert.deepEqual(Object.keys(byHeader).sort(), ['blue', 'green']);
    assert.equal(byHeader.blue! + byHeader.green!, N);
    assert.ok(Math.abs(byHeader.green! / N - 0.1) <= 0.01, `green share ${byHeader.green! / N}`);
    assert.ok(Math.abs(byHeader.blue! / N - 0.9) <= 0.01, `blue share ${byHeader.blue! / N}`);
    // The upstreams agree with the headers: nothing was answered twice or lost.
    assert.equal(blue.seen.length, byHeader.blue);
    assert.equal(green.seen.length, byHeader.green);
  });
});
