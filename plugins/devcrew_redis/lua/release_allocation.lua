-- Remove an allocation and return it; HDEL makes the release happen once.
-- KEYS[1] the agent's allocations (task -> JSON), KEYS[2] set of agents with allocations
-- ARGV[1] agent_id, ARGV[2] task_id
-- Returns the allocation's JSON, or nil if there was none.
local json = redis.call('HGET', KEYS[1], ARGV[2])
if not json then return false end
redis.call('HDEL', KEYS[1], ARGV[2])
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('SREM', KEYS[2], ARGV[1]) end
return json
