-- Complete a delegation: free its slot (exactly once), mark it completed and append
-- its audit record, unless it was completed before.
-- KEYS[1] delegations (task -> record JSON), KEYS[2] the agent's slots, KEYS[3] load
-- hash, KEYS[4] audit log, KEYS[5] audit counter, then the audit record's index sets
-- ARGV[1] agent_id, ARGV[2] task_id, ARGV[3] completed_at as JSON, ARGV[4] audit
-- records (0 or 1), ARGV[5] audit JSON, ARGV[6] its index count
-- The record's JSON is read and rewritten by position (see the field-order guard in
-- store.py): agent_id second, status after string fields only, completed_at last.
-- Returns nil when the task has no delegation to the agent, else {1 if this call
-- completed it else 0, the record's JSON}.
local agent, task = ARGV[1], ARGV[2]
local json = redis.call('HGET', KEYS[1], task)
if not json or string.match(json, '^{"task_id":"[^"]*","agent_id":"([^"]*)"') ~= agent then
  return false
end
if string.match(json, ',"status":"([^"]*)"') == 'completed' then return {0, json} end
if redis.call('ZREM', KEYS[2], task) == 1 then
  redis.call('HSET', KEYS[3], agent, redis.call('ZCARD', KEYS[2]))
end
json = string.gsub(json, ',"status":"[^"]*"', ',"status":"completed"', 1)
json = string.match(json, '^(.*,"completed_at":)') .. ARGV[3] .. '}'
redis.call('HSET', KEYS[1], task, json)
append(KEYS[4], KEYS[5], tonumber(ARGV[4]), 5, 6)
return {1, json}
