import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StickySplit } from '../../gateway/routing/sticky.ts';
import { config, startGateway, startUpstream, withTestListeners, type TestGateway, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, rawExchange, replyOf, waitFor } from '../helpers/http.ts';

// Issue 11, sticky split (SPEC §2 `sticky: { header }`) from outside: a real gateway in front
// of real model servers; the deployment that served is the `azureml-model-deployment` header.

const KEY = 'sticky-test-key-0123456789';
const HEADER = 'x-user-id';

/** Answers naming `name`; a readiness endpoint that answers as the test says. */
async function model(name: string, ready = true): Promise<TestUpstream & { setReady(r: boolean): void }> {
  let isReady = ready;
  const u = await startUpstream(name, (req, res) => {
    if (req.url === '/ready') {
      res.writeHead(isReady ? 200 : 503).end();
      return;
    }
    const text = JSON.stringify({ deployment: name });
    res.writeHead(200, { 'content-type': 'application/json' }).end(text);
  });
  return Object.assign(u, { setReady: (r: boolean) => { isReady = r; } });
}

/** The deployment that served one scoring request with these headers. */
async function served(gw: TestGateway, headers: Record<string, string> = {}): Promise<string> {
  const r = await call(`${gw.url}/endpoints/cars/score`, { body: '{}', headers: { ...bearer(KEY), ...headers } });
  assert.equal(r.status, 200, r.body);
  const d = String(r.headers['azureml-model-deployment']);
  assert.equal(r.json<{ deployment: string }>().deployment, d, 'the header names the deployment that answered');
  return d;
}

/** `f` over `items`, `width` at a time, results in order. */
async function inBatches<T, R>(items: readonly T[], width: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...await Promise.all(items.slice(i, i + width).map(f)));
  return out;
}

const metric = async (gw: TestGateway, re: RegExp): Promise<number> => Number(re.exec((await call(`${gw.adminUrl}/metrics`)).body)?.[1] ?? 0);

describe('sticky split through a real gateway', () => {
  let blue: TestUpstream;
  let green: TestUpstream;
  let gw: TestGateway;
  const doc = (traffic: Record<string, number>): Record<string, unknown> => ({
    logging: { access_log: false },
    endpoints: {
      cars: {
        keys: { primary: KEY },
        traffic,
        sticky: { header: HEADER },
        deployments: { blue: { instances: [blue.url] }, green: { instances: [green.url] } },
      },
    },
  });

  before(async () => {
    blue = await startUpstream('blue');
    green = await startUpstream('green');
    gw = await startGateway(doc({ blue: 70, green: 30 }));
  });
  after(async () => {
    await gw?.close();
    await blue?.close();
    await green?.close();
  });

  test('one caller, one deployment: every request with the same header value lands on the same deployment', async () => {
    const users = Array.from({ length: 20 }, (_, i) => `user-${i}`);
    const expected = new StickySplit({ blue: 70, green: 30 }, HEADER);
    const seen = new Set<string>();
    for (const user of users) {
      const got = await inBatches(Array.from({ length: 10 }), 5, () => served(gw, { [HEADER]: user }));
      assert.deepEqual(new Set(got).size, 1, `${user}: ${got.join(',')}`);
      assert.equal(got[0], expected.pick(user), user);
      seen.add(got[0]!);
    }
    assert.deepEqual([...seen].sort(), ['blue', 'green'], 'twenty callers are not all on one deployment');
  });

  test('2,000 callers split by the weights (70/30 within 3 points)', async () => {
    const users = Array.from({ length: 2_000 }, (_, i) => `caller-${i}@example.com`);
    const got = await inBatches(users, 16, (u) => served(gw, { [HEADER]: u }));
    const green = got.filter((d) => d === 'green').length / got.length;
    assert.ok(Math.abs(green - 0.3) <= 0.03, `green share ${green}`);
  });

  test('without the header: the weighted split as before, exactly 70 of every 100', async () => {
    const got = await inBatches(Array.from({ length: 100 }), 10, () => served(gw));
    assert.equal(got.filter((d) => d === 'blue').length, 70);
    assert.equal(got.filter((d) => d === 'green').length, 30);
    // An empty header value is no header.
    const empty = await inBatches(Array.from({ length: 100 }), 10, () => served(gw, { [HEADER]: '' }));
    assert.equal(empty.filter((d) => d === 'green').length, 30);
  });

  test('azureml-model-deployment wins over the sticky header', async () => {
    const s = new StickySplit({ blue: 70, green: 30 }, HEADER);
    const onBlue = Array.from({ length: 50 }, (_, i) => `u${i}`).find((u) => s.pick(u) === 'blue')!;
    const onGreen = Array.from({ length: 50 }, (_, i) => `u${i}`).find((u) => s.pick(u) === 'green')!;
    assert.equal(await served(gw, { [HEADER]: onBlue, 'azureml-model-deployment': 'green' }), 'green');
    assert.equal(await served(gw, { [HEADER]: onGreen, 'azureml-model-deployment': 'blue' }), 'blue');
    assert.equal(await served(gw, { [HEADER]: onBlue }), 'blue');
  });

  test('a repeated header counts by its first value; a huge one costs only its first 256 bytes', async () => {
    const s = new StickySplit({ blue: 70, green: 30 }, HEADER);
    const users = Array.from({ length: 50 }, (_, i) => `u${i}`);
    const onBlue = users.find((u) => s.pick(u) === 'blue')!;
    const onGreen = users.find((u) => s.pick(u) === 'green')!;
    const port = Number(new URL(gw.url).port);
    for (const [first, second] of [[onBlue, onGreen], [onGreen, onBlue]] as const) {
      const r = replyOf(await rawExchange(port, [[
        'POST /endpoints/cars/score HTTP/1.1', 'Host: gw', `Authorization: Bearer ${KEY}`,
        `X-User-Id: ${first}`, `x-user-id: ${second}`, 'Content-Length: 2', 'Connection: close', '', '{}',
      ].join('\r\n')]));
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers['azureml-model-deployment'], s.pick(first));
    }
    const huge = 'h'.repeat(256);
    const d = await served(gw, { [HEADER]: huge });
    for (const tail of ['a', 'b'.repeat(6_000)]) assert.equal(await served(gw, { [HEADER]: huge + tail }), d);
  });

  test('a reload from 90/10 to 80/20 moves only callers that must move: about 10%, all to green', async () => {
    gw.gw.store.apply(config(withTestListeners(doc({ blue: 90, green: 10 }))));
    const users = Array.from({ length: 1_000 }, (_, i) => `reload-${i}`);
    const before = await inBatches(users, 16, (u) => served(gw, { [HEADER]: u }));
    gw.gw.store.apply(config(withTestListeners(doc({ blue: 80, green: 20 }))));
    const after = await inBatches(users, 16, (u) => served(gw, { [HEADER]: u }));
    const moved = users.filter((_, i) => before[i] !== after[i]);
    assert.ok(moved.length >= 70 && moved.length <= 130, `${moved.length} of 1,000 moved`);
    for (const u of moved) assert.equal(after[users.indexOf(u)], 'green', `${u} moved away from green`);
    gw.gw.store.apply(config(withTestListeners(doc({ blue: 70, green: 30 }))));
  });
});

describe('sticky split and readiness', () => {
  const PROBE = { path: '/ready', initial_delay: 0, period: 0.05, timeout: 0.5, success_threshold: 1, failure_threshold: 1 };
  let blue: Awaited<ReturnType<typeof model>>;
  let green: Awaited<ReturnType<typeof model>>;
  let red: Awaited<ReturnType<typeof model>>;
  let gw: TestGateway;
  const ready = (d: string): Promise<number> => metric(gw, new RegExp(`switchyard_instance_ready\\{endpoint="cars",deployment="${d}",[^}]*\\} (\\d)`));

  before(async () => {
    blue = await model('blue');
    green = await model('green');
    red = await model('red');
    gw = await startGateway({
      logging: { access_log: false },
      endpoints: {
        cars: {
          keys: { primary: KEY },
          traffic: { blue: 50, green: 30, red: 20 },
          sticky: { header: HEADER },
          deployments: {
            blue: { instances: [blue.url], readiness_probe: PROBE },
            green: { instances: [green.url], readiness_probe: PROBE },
            red: { instances: [red.url], readiness_probe: PROBE },
          },
        },
      },
    });
    await waitFor(async () => (await ready('blue')) === 1 && (await ready('green')) === 1 && (await ready('red')) === 1, 'all ready');
  });
  after(async () => {
    await gw?.close();
    await blue?.close();
    await green?.close();
    await red?.close();
  });

  test('callers of an unready deployment spill (counted) to their runner-up, each to one, others stay; they return when it is ready', async () => {
    const s = new StickySplit({ blue: 50, green: 30, red: 20 }, HEADER);
    const users = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    const home = await inBatches(users, 12, (u) => served(gw, { [HEADER]: u }));
    assert.deepEqual(home, users.map((u) => s.pick(u)));
    const ofBlue = users.filter((_, i) => home[i] === 'blue');
    assert.ok(ofBlue.length >= 10, `${ofBlue.length} callers on blue`);

    blue.setReady(false);
    await waitFor(async () => (await ready('blue')) === 0, 'blue unready');
    const spilledBefore = (await metric(gw, /switchyard_spill_total\{endpoint="cars",from="blue",to="green"\} (\d+)/))
      + (await metric(gw, /switchyard_spill_total\{endpoint="cars",from="blue",to="red"\} (\d+)/));
    for (let round = 0; round < 3; round++) {
      const now = await inBatches(users, 12, (u) => served(gw, { [HEADER]: u }));
      users.forEach((u, i) => {
        if (home[i] === 'blue') assert.equal(now[i], s.pick(u, (n) => n !== 'blue'), `${u}: its runner-up, every time`);
        else assert.equal(now[i], home[i], `${u} stays where it was`);
      });
    }
    const spilled = (await metric(gw, /switchyard_spill_total\{endpoint="cars",from="blue",to="green"\} (\d+)/))
      + (await metric(gw, /switchyard_spill_total\{endpoint="cars",from="blue",to="red"\} (\d+)/));
    assert.equal(spilled - spilledBefore, ofBlue.length * 3);

    blue.setReady(true);
    await waitFor(async () => (await ready('blue')) === 1, 'blue ready again');
    assert.deepEqual(await inBatches(users, 12, (u) => served(gw, { [HEADER]: u })), home);
  });

  test('never to an unready deployment: with none ready the caller waits for one', async () => {
    const s = new StickySplit({ blue: 50, green: 30, red: 20 }, HEADER);
    const user = Array.from({ length: 50 }, (_, i) => `w${i}`).find((u) => s.pick(u) === 'blue')!;
    for (const m of [blue, green, red]) m.setReady(false);
    await waitFor(async () => (await ready('blue')) === 0 && (await ready('green')) === 0 && (await ready('red')) === 0, 'none ready');
    const waiting = served(gw, { [HEADER]: user });
    red.setReady(true);
    assert.equal(await waiting, 'red', 'the only ready deployment, once it is');
    blue.setReady(true);
    green.setReady(true);
    await waitFor(async () => (await ready('blue')) === 1 && (await ready('green')) === 1, 'ready again');
    assert.equal(await served(gw, { [HEADER]: user }), 'blue');
  });
});
