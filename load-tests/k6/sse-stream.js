// @ts-check
/**
 * Streaming: `/endpoints/{ENDPOINT}/stream`, which the demo model server answers as
 * Server-Sent Events (EVENTS events, INTERVAL_MS apart), must come through as a stream:
 * 200, `content-type: text/event-stream`, every event, and the first of them long before
 * the last.
 *
 * Time to first event: k6's http module reads the whole response, so what it can time is
 * the first byte (`timings.waiting`: request sent → first byte of the answer). The demo
 * model writes its first event right behind its headers, so there `sse_first_event` is the
 * time to the first event; for a model that sends headers early and its first token later
 * it is a lower bound. A gateway that buffered the stream would hold the first byte until
 * the model finished: about EVENTS x INTERVAL_MS. Hence the thresholds: p95 of
 * `sse_first_event` below one INTERVAL_MS (the first event arrived before the model wrote
 * the second), and no call whose first byte came after half the stream's length
 * (`sse_buffered`).
 *
 *   k6 run load-tests/k6/sse-stream.js
 * Env: BASE_URL, ADMIN_URL, KEY, ENDPOINT, BODY (lib.js); METHOD (GET; POST sends BODY),
 * VUS (5), DURATION (30s), EVENTS (5), INTERVAL_MS (200): the demo model server's `n` and
 * `interval_ms` query parameters (query strings pass through the gateway, SPEC §3);
 * FIRST_EVENT_P95_MS (INTERVAL_MS).
 */
import http from 'k6/http';
import { check } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { BODY, TREND_STATS, header, num, requireReady, scoreHeaders, scoreUrl } from './lib.js';

const METHOD = (__ENV.METHOD || 'GET').toUpperCase();
const EVENTS = num('EVENTS', 5);
const INTERVAL_MS = num('INTERVAL_MS', 200);

const firstEvent = new Trend('sse_first_event', true);
const total = new Trend('sse_total', true);
const events = new Trend('sse_events');
/** The first byte came after half the stream's length: something held the stream. */
const buffered = new Rate('sse_buffered');

/** @type {import('k6/options').Options} */
export const options = {
  vus: num('VUS', 5),
  duration: __ENV.DURATION || '30s',
  summaryTrendStats: TREND_STATS,
  thresholds: {
    checks: ['rate==1'],
    http_req_failed: ['rate==0'],
    sse_first_event: [`p(95)<${num('FIRST_EVENT_P95_MS', INTERVAL_MS)}`],
    sse_buffered: ['rate==0'],
  },
};

export function setup() {
  requireReady();
}

export default function () {
  const url = `${scoreUrl(undefined, 'stream')}?n=${EVENTS}&interval_ms=${INTERVAL_MS}`;
  const res = http.request(METHOD, url, METHOD === 'GET' ? null : BODY, {
    headers: scoreHeaders({ Accept: 'text/event-stream' }),
    tags: { name: 'stream' },
    timeout: '60s',
  });
  const body = typeof res.body === 'string' ? res.body : '';
  const n = (body.match(/^data:/gm) || []).length; // the final `data: [DONE]` included
  check(res, {
    'status is 200': (r) => r.status === 200,
    'content-type is text/event-stream': (r) => (header(r, 'content-type') || '').toLowerCase().startsWith('text/event-stream'),
    'every event arrived': () => n >= EVENTS,
  });
  if (res.status !== 200) return;
  firstEvent.add(res.timings.waiting);
  total.add(res.timings.duration);
  events.add(n);
  buffered.add(res.timings.waiting > (EVENTS * INTERVAL_MS) / 2);
}
