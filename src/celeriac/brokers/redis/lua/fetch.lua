-- celeriac: promote due delayed messages, then take up to max_count ready messages and
-- record each in kombu's unacked hash and unacked_index zset plus celeriac's lease zset,
-- all in this one script: a crash can never leave a message popped but unrecorded.
--
-- KEYS: 1 unacked, 2 unacked_index, 3 leases, 4 delayed,
--       then per queue 5 keys: bucket 0, bucket 3, bucket 6, bucket 9, wake list
-- ARGV: 1 now, 2 lease deadline, 3 max_count, 4 nonce (for tags of odd envelopes),
--       5 key prefix, 6 promote limit, 7 wake cap, 8.. queue names
-- Returns {next delayed due time or '', queue index, tag, envelope, ...}
local now = ARGV[1]
local max_count = tonumber(ARGV[3])
local prefix = ARGV[5]
local cap = tonumber(ARGV[7])
local nq = (#KEYS - 4) / 5
local sep = '\6\22'
-- A member longer than zset-max-listpack-value (64 bytes) keeps a zset in skiplist
-- encoding for good. Without it the two index zsets stay listpacks (they hold at most a
-- few windows of tags) and every ZADD scans the whole listpack: 10 us instead of 1.4 us
-- here, half of Redis's CPU per consumed message. Scored +inf, it is never swept,
-- restored or acked, by celeriac or by kombu (which reads scores up to now - timeout).
local anchor = '_celeriac.anchor: keeps this zset in skiplist encoding (O(log n) adds); never a delivery'

local function wake(key)
  redis.call('LPUSH', key, '1')
  redis.call('LTRIM', key, 0, cap - 1)
end

-- 1. due delayed messages become ready (member = envelope .. '\n' .. step .. queue)
local due = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, tonumber(ARGV[6]))
for _, member in ipairs(due) do
  local nl = string.find(member, '\n', 1, true)
  if nl then
    local step = string.sub(member, nl + 1, nl + 1)
    local queue = string.sub(member, nl + 2)
    local key = prefix .. queue
    if step ~= '0' then key = key .. sep .. step end
    redis.call('LPUSH', key, string.sub(member, 1, nl - 1))
    wake(prefix .. '_celeriac.wake.' .. queue)
  end
  redis.call('ZREM', KEYS[4], member)
end

-- 2. pop in kombu's order (every queue's bucket 0 first), record each message
local out = {''}
local taken = 0
-- Where `needle` occurs in env, if exactly once: start, end; nil otherwise. Every needle
-- here starts with '_', which is rare in an envelope (the body is base64, ids are hex),
-- so the search stops at few candidates; a needle starting with '"' stops at each quote.
local function once(env, needle)
  local s, f = string.find(env, needle, 1, true)
  if not s or string.find(env, needle, f + 1, true) then return nil end
  return s, f
end

-- The string value that starts at `from` and ends at the next quote, if it has no escapes.
local function plain_value(env, from)
  local q = string.find(env, '"', from, true)
  if not q then return nil end
  local value = string.sub(env, from, q - 1)
  if string.find(value, '\\', 1, true) then return nil end
  return value, q
end

-- Tag, exchange and routing key of an envelope written without spaces (celeriac's own),
-- read by string search: `"delivery_tag":"..."` and `"delivery_info":{"exchange":"...",
-- "routing_key":"..."` each found exactly once. nil otherwise (cjson then decodes it).
-- Saves a cjson.decode per message.
local function compact_fields(env)
  local s, f = once(env, '_tag":"')
  if not s or string.sub(env, s - 9, s - 1) ~= '"delivery' then return nil end
  local tag = plain_value(env, f + 1)
  s, f = once(env, '_info":{"exchange":"')
  if not tag or not s or string.sub(env, s - 9, s - 1) ~= '"delivery' then return nil end
  local ex, q = plain_value(env, f + 1)
  if not ex or string.sub(env, q, q + 16) ~= '","routing_key":"' then return nil end
  local rk = plain_value(env, q + 17)
  if not rk then return nil end
  return tag, ex, rk
end

local function record(env, queue)
  local tag, ex, rk = compact_fields(env)
  local rec
  -- The record splices env in undecoded. An envelope that is not JSON makes a record
  -- that is not JSON: celeriac reads one back (redis.py _load_record), kombu would not,
  -- so the common break (a cut-off envelope, not ending '}}') takes the cjson path.
  if tag and string.sub(env, -2) == '}}' then
    rec = '[' .. env .. ',"' .. ex .. '","' .. rk .. '"]'
  else
    local ok, doc = pcall(cjson.decode, env)
    local props = ok and type(doc) == 'table' and doc.properties
    tag = nil
    if type(props) == 'table' then
      tag = props.delivery_tag
      local info = props.delivery_info
      ex, rk = '', queue
      if type(info) == 'table' then
        if type(info.exchange) == 'string' then ex = info.exchange end
        if type(info.routing_key) == 'string' then rk = info.routing_key end
      end
      rec = '[' .. env .. ',' .. cjson.encode(ex) .. ',' .. cjson.encode(rk) .. ']'
    else
      rec = cjson.encode({env, '', queue})
    end
  end
  if type(tag) ~= 'string' or tag == '' then tag = ARGV[4] .. ':' .. taken end
  if redis.call('HSETNX', KEYS[1], tag, rec) == 0 then
    -- the same envelope is already in flight elsewhere: keep both records
    tag = ARGV[4] .. ':' .. taken
    redis.call('HSET', KEYS[1], tag, rec)
  end
  return tag
end

-- the index and lease entries of the taken messages, added in one ZADD per zset
local indexed, leased = {}, {}
local function add_all(key, pairs)
  redis.call('ZADD', key, 'NX', 'inf', anchor)
  for i = 1, #pairs, 2000 do  -- unpack stays far below Lua's stack limit
    redis.call('ZADD', key, unpack(pairs, i, math.min(i + 1999, #pairs)))
  end
end

for step = 1, 4 do
  for q = 1, nq do
    if taken >= max_count then break end
    local items = redis.call('RPOP', KEYS[4 + (q - 1) * 5 + step], max_count - taken)
    if items then
      for _, env in ipairs(items) do
        taken = taken + 1
        local tag = record(env, ARGV[7 + q])
        indexed[#indexed + 1] = now
        indexed[#indexed + 1] = tag
        leased[#leased + 1] = ARGV[2]
        leased[#leased + 1] = tag
        out[#out + 1] = q
        out[#out + 1] = tag
        out[#out + 1] = env
      end
    end
  end
end

if taken > 0 then
  add_all(KEYS[2], indexed)
  add_all(KEYS[3], leased)
end

-- 3. a drained queue needs no wake tokens: drop them so idle consumers sleep
for q = 1, nq do
  local base = 4 + (q - 1) * 5
  if redis.call('EXISTS', KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]) == 0 then
    redis.call('DEL', KEYS[base + 5])
  end
end

local first = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
if first[2] then out[1] = first[2] end
return out
