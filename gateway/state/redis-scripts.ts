/**
 * The Lua scripts the shared state runs in Redis: each is one atomic round trip and reads
 * the time from Redis (`TIME`), so every replica decides on one clock whatever its own says.
 * ioredis sends them with EVALSHA (EVAL once per new connection, and again on NOSCRIPT).
 */

/**
 * GCRA (the generic cell rate algorithm: a token bucket kept as one number), after
 * go-redis/redis_rate's `allowN` (itself from rwz/redis-gcra). The key holds the bucket's
 * theoretical arrival time (TAT): the instant the bucket is full again had every admitted
 * request arrived exactly at the rate. A request is admitted when the TAT it would push
 * forward stays within `burst` emission intervals of now.
 *
 * Everything is in whole microseconds (TIME gives them exactly, and doubles hold them
 * exactly until 2255): redis_rate's float seconds lose the last request of a burst to
 * rounding at high rates. The TAT is written with '%.0f' because Lua's tostring would
 * shorten it to 14 digits.
 *
 * KEYS[1] the bucket; ARGV[1] emission interval in µs (1e6 / rate, ≥ 1); ARGV[2] burst (≥ 1).
 * Returns {allowed 0|1, remaining, retry-after ms, reset ms} (integers, ms rounded up).
 * An admitted request writes the new TAT with a TTL of the time until the bucket is full
 * again, after which an absent key and a full bucket are the same thing: idle buckets
 * vanish. A refused one writes nothing.
 */
export const GCRA_TAKE = `
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', key)) or now
if tat < now then tat = now end
local debt = tat - now + interval
local room = interval * burst - debt
if room >= 0 then
  local reset = math.ceil(debt / 1000)
  redis.call('SET', key, string.format('%.0f', now + debt), 'PX', reset)
  return {1, math.floor(room / interval), 0, reset}
end
return {0, 0, math.ceil(-room / 1000), math.ceil((tat - now) / 1000)}
`;

/**
 * A replica's heartbeat: score this process's id with Redis' time in the replicas ZSET,
 * drop ids not seen for `stale` ms, and count the rest. The set itself expires when no
 * replica beats any more.
 *
 * KEYS[1] the set; ARGV[1] this process's id; ARGV[2] stale after (ms). Returns the count.
 */
export const HEARTBEAT = `
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local stale = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', key, now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - stale)
redis.call('PEXPIRE', key, stale)
return redis.call('ZCARD', key)
`;

/**
 * Compare-and-set in one atomic step. KEYS[1] the document, KEYS[2] its version; ARGV[1]
 * the version expected (absent counts as 0), ARGV[2] the new document, ARGV[3] its version,
 * ARGV[4] the channel. Returns {1} when stored (and published), else {0, stored version,
 * current document or nil}.
 */
export const CAS_WRITE = `
local stored = redis.call('GET', KEYS[2]) or '0'
if tonumber(stored) == tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[3])
  return {1}
end
return {0, stored, redis.call('GET', KEYS[1])}
`;
