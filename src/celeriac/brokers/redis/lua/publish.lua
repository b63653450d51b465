-- celeriac: put messages on their ready lists (or into the delayed zset) and wake the
-- consumers waiting on their queues, atomically, as one command with one reply (so a
-- pipelined publisher has exactly one reply to read per publish).
--
-- KEYS: the targets (ready lists, or the delayed zset), then the wake lists
-- ARGV: 1 'list' or 'zset', 2 number of targets, 3 wake cap,
--       then per target how many of the items are its own,
--       then per wake list how many tokens to push (at most the cap),
--       then the items in target order (list: envelopes; zset: score, member, ...)
-- Returns the number of items stored.
local zset = ARGV[1] == 'zset'
local ntargets = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local nwakes = #KEYS - ntargets
local chunk = 1000 -- Lua's unpack() has a stack limit; push in slices (even, for zset)

local pos = 4 + ntargets + nwakes
for t = 1, ntargets do
  local count = tonumber(ARGV[3 + t])
  local last = pos + count - 1
  while pos <= last do
    local stop = math.min(pos + chunk - 1, last)
    if zset then
      redis.call('ZADD', KEYS[t], unpack(ARGV, pos, stop))
    else
      redis.call('LPUSH', KEYS[t], unpack(ARGV, pos, stop))
    end
    pos = stop + 1
  end
end

for w = 1, nwakes do
  local key = KEYS[ntargets + w]
  local tokens = {}
  for i = 1, math.min(tonumber(ARGV[3 + ntargets + w]), cap) do tokens[i] = '1' end
  if #tokens > 0 then
    redis.call('LPUSH', key, unpack(tokens))
    redis.call('LTRIM', key, 0, cap - 1)
  end
end
return pos - 4 - ntargets - nwakes
