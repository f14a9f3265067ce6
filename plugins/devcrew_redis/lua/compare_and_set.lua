-- Replace a record if its version is still the one the caller read (the caller
-- validated the new record and retries on a conflict).
-- KEYS[1] records (id -> JSON), KEYS[2] versions, KEYS[3] version clock
-- ARGV[1] id, ARGV[2] expected version, ARGV[3] JSON
-- Returns 0 on a version conflict (or if the record is gone), else 1.
if (redis.call('HGET', KEYS[2], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], redis.call('INCR', KEYS[3]))
return 1
