-- Insert a new run unless its ID is taken.
-- KEYS[1] runs (id -> JSON), KEYS[2] cancel flags, KEYS[3] versions, KEYS[4] version
-- clock, KEYS[5] all runs, KEYS[6] the workflow's runs, KEYS[7] the runs in its status
-- (sorted sets by created_at)
-- ARGV[1] run_id, ARGV[2] JSON, ARGV[3] cancel flag (0/1), ARGV[4] created_at
-- Returns 0 if the run exists already, else 1.
local id = ARGV[1]
if redis.call('HSETNX', KEYS[1], id, ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], id, ARGV[3])
redis.call('HSET', KEYS[3], id, redis.call('INCR', KEYS[4]))
for i = 5, 7 do redis.call('ZADD', KEYS[i], ARGV[4], id) end
return 1
