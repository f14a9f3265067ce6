-- Complete a delegation: free its slot (exactly once), mark it completed and append
-- its audit record, unless it was completed before.
-- KEYS[1] task -> agent, KEYS[2] task -> status, KEYS[3] task -> completed_at,
-- KEYS[4] delegations (task -> JSON), KEYS[5] all delegations (by delegated_at),
-- KEYS[6] the agent's slots, KEYS[7] load hash, KEYS[8] active delegations,
-- KEYS[9] completed delegations, KEYS[10] audit log, KEYS[11] audit counter, then the
-- audit record's index sets
-- ARGV[1] agent_id, ARGV[2] task_id, ARGV[3] completed_at, ARGV[4] the completed
-- status, ARGV[5] audit records (0 or 1), ARGV[6] audit JSON, ARGV[7] its index count
-- Returns nil when the task has no delegation to the agent, else {1 if this call
-- completed it else 0, JSON, status, completed_at}.
local agent, task = ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[1], task) ~= agent then return false end
local json = redis.call('HGET', KEYS[4], task)
local status = redis.call('HGET', KEYS[2], task)
if status == ARGV[4] then return {0, json, status, redis.call('HGET', KEYS[3], task)} end
if redis.call('ZREM', KEYS[6], task) == 1 then
  redis.call('HSET', KEYS[7], agent, redis.call('ZCARD', KEYS[6]))
end
redis.call('HSET', KEYS[2], task, ARGV[4])
redis.call('HSET', KEYS[3], task, ARGV[3])
redis.call('ZREM', KEYS[8], task)
redis.call('ZADD', KEYS[9], redis.call('ZSCORE', KEYS[5], task), task)
append(KEYS[10], KEYS[11], tonumber(ARGV[5]), 6, 12)
return {1, json, ARGV[4], ARGV[3]}
