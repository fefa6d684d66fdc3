// @ts-check
/**
 * Streaming: calls `/endpoints/${ENDPOINT}/stream`, which the demo model server answers as
 * Server-Sent Events, and checks that the gateway passes the stream through: 200,
 * `content-type: text/event-stream`, at least one `data:` event. k6 reads the whole body, so
 * streaming shows in the timings: `sse_ttfb` (time to first byte) well below `sse_total`
 * means the events were not buffered by the gateway.
 *   k6 run -e KEY=<demo key> load-tests/k6/sse-stream.js
 * Env: BASE_URL, ENDPOINT, KEY as in smoke.js; METHOD (GET; POST sends BODY), VUS (5),
 * DURATION (30s), EVENTS (5) and INTERVAL_MS (200): the demo model server's `n` and
 * `interval_ms` query parameters (the query string passes through the gateway).
 */
import http from 'k6/http';
import { check, fail } from 'k6';
import { Trend } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL || 'http://127.0.0.1:8080';
const ENDPOINT = __ENV.ENDPOINT || 'demo';
const KEY = __ENV.KEY || '';
const METHOD = (__ENV.METHOD || 'GET').toUpperCase();
const EVENTS = Number(__ENV.EVENTS || 5);
const INTERVAL_MS = Number(__ENV.INTERVAL_MS || 200);
const BODY = __ENV.BODY || JSON.stringify({ data: [[1, 2, 3], [4, 5, 6]] });

const ttfb = new Trend('sse_ttfb', true);
const total = new Trend('sse_total', true);
const events = new Trend('sse_events');

/** @type {import('k6/options').Options} */
export const options = {
  vus: Number(__ENV.VUS || 5),
  duration: __ENV.DURATION || '30s',
  thresholds: { checks: ['rate==1'] },
};

export function setup() {
  if (!KEY) fail('set KEY (the demo key printed by `npm start`)');
}

export default function () {
  const url = `${BASE_URL}/endpoints/${ENDPOINT}/stream?n=${EVENTS}&interval_ms=${INTERVAL_MS}`;
  const res = http.request(METHOD, url, METHOD === 'GET' ? null : BODY, {
    headers: { Accept: 'text/event-stream', 'Content-Type': 'application/json', Authorization: `Bearer ${KEY}` },
    tags: { name: 'stream' },
    timeout: '60s',
  });
  let contentType = '';
  for (const k of Object.keys(res.headers)) if (k.toLowerCase() === 'content-type') contentType = res.headers[k] ?? '';
  const body = typeof res.body === 'string' ? res.body : '';
  const n = (body.match(/^data:/gm) || []).length; // includes the final `data: [DONE]`
  check(res, {
    'status is 200': (r) => r.status === 200,
    'content-type is text/event-stream': () => contentType.toLowerCase().startsWith('text/event-stream'),
    'all events arrived': () => n >= EVENTS,
  });
  ttfb.add(res.timings.waiting);
  total.add(res.timings.duration);
  events.add(n);
}
