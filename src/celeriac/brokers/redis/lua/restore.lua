-- celeriac: put messages back on their queue lists, each only if its record is still
-- there and still qualifies (so a concurrent ack, extend or other sweeper wins).
-- Used for lease expiry, Celery-style stale entries, requeue and dead-letter requeue.
--
-- KEYS: 1 record hash (unacked or dead), 2 and 3 zsets to clean (unacked_index and
--       leases, or the dead index twice), 4 unacked_mutex
-- ARGV: 1 now, 2 stale ceiling, 3 key prefix, 4 wake cap, 5 mutex token ('' = none),
--       then groups of 6: tag, mode, queue, step, front '1'/'0', payload
--       mode: 'lease' (lease ran out), 'stale' (no lease, indexed before the ceiling),
--             'owned' (caller holds it)
-- Returns the number of messages restored.
local prefix = ARGV[3]
local cap = tonumber(ARGV[4])
local now = tonumber(ARGV[1])
local ceiling = tonumber(ARGV[2])
local restored = 0
for i = 6, #ARGV - 5, 6 do
  local tag, mode = ARGV[i], ARGV[i + 1]
  local ok = true
  if mode == 'lease' then
    local deadline = redis.call('ZSCORE', KEYS[3], tag)
    ok = deadline and tonumber(deadline) <= now
  elseif mode == 'stale' then
    local seen = redis.call('ZSCORE', KEYS[2], tag)
    ok = seen and tonumber(seen) <= ceiling and not redis.call('ZSCORE', KEYS[3], tag)
  end
  if ok and redis.call('HDEL', KEYS[1], tag) == 1 then
    redis.call('ZREM', KEYS[2], tag)
    redis.call('ZREM', KEYS[3], tag)
    local queue, step = ARGV[i + 2], ARGV[i + 3]
    local key = prefix .. queue
    if step ~= '0' then key = key .. '\6\22' .. step end
    if ARGV[i + 4] == '1' then
      redis.call('RPUSH', key, ARGV[i + 5])
    else
      redis.call('LPUSH', key, ARGV[i + 5])
    end
    local wake = prefix .. '_celeriac.wake.' .. queue
    redis.call('LPUSH', wake, '1')
    redis.call('LTRIM', wake, 0, cap - 1)
    restored = restored + 1
  end
end
if ARGV[5] ~= '' and redis.call('GET', KEYS[4]) == ARGV[5] then
  redis.call('DEL', KEYS[4])
end
return restored
