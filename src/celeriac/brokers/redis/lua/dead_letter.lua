-- celeriac: move an in-flight delivery to the dead-letter store, atomically. Only a
-- delivery still recorded in unacked moves (one restored by a sweep is not ours).
-- The stored value is ARGV[3] (a JSON object opened by the caller) .. record .. '}',
-- so the original envelope is kept byte for byte.
--
-- KEYS: 1 unacked, 2 unacked_index, 3 leases, 4 dead hash, 5 dead index
-- ARGV: 1 tag, 2 dead-letter id, 3 JSON head, 4 failed_at
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3] .. rec .. '}')
redis.call('ZADD', KEYS[5], ARGV[4], ARGV[2])
return 1
