-- celeriac: move in-flight deliveries into the delayed zset until due, atomically: a
-- worker that received a message whose eta is still ahead parks it there. Only a
-- delivery still recorded in unacked moves (one restored by a sweep is not ours any
-- more: whoever receives it next parks it), so no crash or race leaves two copies.
--
-- KEYS: 1 unacked, 2 unacked_index, 3 leases, 4 delayed, then the wake lists
-- ARGV: 1 wake cap, 2 number of deliveries, then per wake list how many tokens to push,
--       then per delivery: tag, due time, member (envelope .. '\n' .. step .. queue)
-- Returns the number parked.
local cap = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local nwakes = #KEYS - 4
local pos = 3 + nwakes
local parked = 0
for _ = 1, n do
  local tag, due, member = ARGV[pos], ARGV[pos + 1], ARGV[pos + 2]
  pos = pos + 3
  if redis.call('HDEL', KEYS[1], tag) == 1 then
    redis.call('ZREM', KEYS[2], tag)
    redis.call('ZREM', KEYS[3], tag)
    redis.call('ZADD', KEYS[4], due, member)
    parked = parked + 1
  end
end
-- consumers blocked until the earliest due time they knew re-read it
for w = 1, nwakes do
  local tokens = {}
  for i = 1, math.min(tonumber(ARGV[2 + w]), cap) do tokens[i] = '1' end
  if #tokens > 0 then
    redis.call('LPUSH', KEYS[4 + w], unpack(tokens))
    redis.call('LTRIM', KEYS[4 + w], 0, cap - 1)
  end
end
return parked
