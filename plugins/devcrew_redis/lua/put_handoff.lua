-- Insert or replace a handoff and its context if its version is still the one the
-- caller read (compare-and-set; the caller retries on a conflict).
-- KEYS[1] handoffs (id -> JSON), KEYS[2] contexts, KEYS[3] versions, KEYS[4] version
-- clock, KEYS[5] all handoffs, KEYS[6] the index of the workflow read (KEYS[7] for a
-- new handoff), KEYS[7] the index of its workflow (sorted sets by created_at)
-- ARGV[1] handoff_id, ARGV[2] expected version ('' = absent), ARGV[3] JSON,
-- ARGV[4] context JSON ('' = none), ARGV[5] created_at
-- Returns 0 on a version conflict, else 1.
local id = ARGV[1]
if (redis.call('HGET', KEYS[3], id) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], id, ARGV[3])
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[2], id)
else
  redis.call('HSET', KEYS[2], id, ARGV[4])
end
redis.call('HSET', KEYS[3], id, redis.call('INCR', KEYS[4]))
redis.call('ZREM', KEYS[6], id)
redis.call('ZADD', KEYS[5], ARGV[5], id)
redis.call('ZADD', KEYS[7], ARGV[5], id)
return 1
