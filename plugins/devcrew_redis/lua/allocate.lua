-- Record an allocation if it fits the agent's limits minus its allocations and live
-- reservations; a live reservation it names on the same agent is redeemed (its
-- capacity becomes the allocation's) in the same step.
-- KEYS[1] limits hash, KEYS[2] the agent's allocations (task -> JSON), KEYS[3] set of
-- agents with allocations, KEYS[4] reservations (id -> JSON), KEYS[5] the agent's
-- reservations (id by expires_at), KEYS[6] all reservations by expires_at
-- ARGV[1] agent_id, ARGV[2] task_id, ARGV[3] allocation JSON, ARGV[4] now,
-- ARGV[5] reservation to redeem ('' = none), ARGV[6..9] the requested amounts
-- Returns {'missing'} (unknown agent), {'existing', JSON}, {'full'} or {'allocated'}.
local limits = redis.call('HGET', KEYS[1], ARGV[1])
if not limits then return {'missing'} end
local existing = redis.call('HGET', KEYS[2], ARGV[2])
if existing then return {'existing', existing} end
local used, redeemed = committed(KEYS[2], KEYS[4], KEYS[5], ARGV[4], ARGV[5])
local request = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])}
if not fits(limits, used, request) then return {'full'} end
if redeemed then
  redis.call('HDEL', KEYS[4], ARGV[5])
  redis.call('ZREM', KEYS[5], ARGV[5])
  redis.call('ZREM', KEYS[6], ARGV[5])
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[1])
return {'allocated'}
