import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classify, LogRateLimit } from '../../../gateway/client-errors.ts';
import { manualClock } from '../../helpers/clock.ts';

test('one log line per key per interval; the next one says how many were held back', () => {
  const clock = manualClock();
  const limit = new LogRateLimit(10_000, clock.now);
  assert.equal(limit.take('bad_request'), 0, 'the first line goes out');
  assert.equal(limit.take('bad_request'), undefined);
  clock.advance(9_999);
  assert.equal(limit.take('bad_request'), undefined);
  assert.equal(limit.take('header_too_large'), 0, 'each key has its own budget');
  clock.advance(1);
  assert.equal(limit.take('bad_request'), 2, 'two were suppressed since the last line');
  assert.equal(limit.take('bad_request'), undefined);
  clock.advance(10_000);
  assert.equal(limit.take('bad_request'), 1);
});

test("Node's client errors map to a closed set of reasons and a catalogue code", () => {
  assert.deepEqual(classify('HPE_INVALID_TRANSFER_ENCODING', false), { reason: 'ambiguous_framing', code: 'BadRequest' });
  assert.deepEqual(classify('HPE_UNEXPECTED_CONTENT_LENGTH', false), { reason: 'ambiguous_framing', code: 'BadRequest' });
  assert.deepEqual(classify('HPE_INVALID_METHOD', false), { reason: 'bad_request', code: 'BadRequest' });
  assert.deepEqual(classify('HPE_INVALID_CHUNK_SIZE', true), { reason: 'bad_body', code: 'BadRequest' });
  assert.deepEqual(classify('HPE_HEADER_OVERFLOW', false), { reason: 'header_too_large', code: 'RequestHeaderFieldsTooLarge' });
  assert.deepEqual(classify('HPE_CHUNK_EXTENSIONS_OVERFLOW', true), { reason: 'chunk_extensions_too_large', code: 'PayloadTooLarge' });
  assert.deepEqual(classify('ERR_HTTP_REQUEST_TIMEOUT', false), { reason: 'header_timeout', code: 'RequestTimeout' });
  assert.deepEqual(classify('ERR_HTTP_REQUEST_TIMEOUT', true), { reason: 'body_timeout', code: 'RequestTimeout' });
  assert.deepEqual(classify('ECONNRESET', false), { reason: 'connection_error', code: undefined });
});
