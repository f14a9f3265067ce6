-- Hold capacity for a future task if it fits the agent's limits minus its allocations
-- and live reservations.
-- KEYS[1] limits hash, KEYS[2] the agent's allocations, KEYS[3] reservations
-- (id -> JSON), KEYS[4] the agent's reservations (id by expires_at), KEYS[5] all
-- reservations by expires_at
-- ARGV[1] agent_id, ARGV[2] reservation_id, ARGV[3] JSON, ARGV[4] now,
-- ARGV[5] expires_at, ARGV[6..9] the requested amounts
-- Returns 'missing' (unknown agent), 'exists' (ID taken), 'full' or 'reserved'.
local limits = redis.call('HGET', KEYS[1], ARGV[1])
if not limits then return 'missing' end
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return 'exists' end
local used = committed(KEYS[2], KEYS[3], KEYS[4], ARGV[4], '')
local request = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
if not fits(limits, used, request) then return 'full' end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2])
return 'reserved'
