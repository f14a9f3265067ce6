-- Replace a run if its version is still the one the caller read (compare-and-set; the
-- caller retries on a conflict), moving it between status indexes.
-- KEYS[1] runs (id -> JSON), KEYS[2] cancel flags, KEYS[3] versions, KEYS[4] version
-- clock, KEYS[5] runs in the status read, KEYS[6] runs in the new status
-- ARGV[1] run_id, ARGV[2] expected version, ARGV[3] JSON, ARGV[4] cancel flag (0/1),
-- ARGV[5] created_at
-- Returns 0 on a version conflict, else 1.
local id = ARGV[1]
if (redis.call('HGET', KEYS[3], id) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('HSET', KEYS[2], id, ARGV[4])
redis.call('HSET', KEYS[3], id, redis.call('INCR', KEYS[4]))
if KEYS[5] ~= KEYS[6] then
  redis.call('ZREM', KEYS[5], id)
  redis.call('ZADD', KEYS[6], ARGV[5], id)
end
return 1
