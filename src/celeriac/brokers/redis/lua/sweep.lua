-- celeriac: find deliveries to restore, with their unacked records.
--  * celeriac's own deliveries whose lease (zset `leases`) ran out;
--  * Celery's (no lease) older than visibility_timeout in unacked_index, only while
--    holding kombu's unacked_mutex, as a Celery worker would. The mutex stays held
--    until restore.lua releases it (token in ARGV[4]).
--
-- KEYS: 1 unacked, 2 unacked_index, 3 leases, 4 unacked_mutex
-- ARGV: 1 now, 2 stale ceiling (now - visibility_timeout), 3 limit, 4 mutex token,
--       5 mutex expiry (ms)
-- Returns {{tag, record, ...} lapsed, {tag, record, ...} stale, mutex taken 0/1}
local limit = tonumber(ARGV[3])
local lapsed = {}
for _, tag in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, limit)) do
  local rec = redis.call('HGET', KEYS[1], tag)
  if rec then
    lapsed[#lapsed + 1] = tag
    lapsed[#lapsed + 1] = rec
  else
    redis.call('ZREM', KEYS[3], tag)  -- acked elsewhere: a stray lease
  end
end

local candidates = {}
for _, tag in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, limit)) do
  if not redis.call('ZSCORE', KEYS[3], tag) then candidates[#candidates + 1] = tag end
end
local stale = {}
local locked = 0
if #candidates > 0 and redis.call('SET', KEYS[4], ARGV[4], 'NX', 'PX', ARGV[5]) then
  locked = 1
  for _, tag in ipairs(candidates) do
    local rec = redis.call('HGET', KEYS[1], tag)
    if rec then
      stale[#stale + 1] = tag
      stale[#stale + 1] = rec
    else
      redis.call('ZREM', KEYS[2], tag)  -- kombu drops index entries without a record too
    end
  end
end
return {lapsed, stale, locked}
