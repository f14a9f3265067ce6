-- Delegate a task: take a load slot on the agent and, when it was taken, store the
-- delegation (replacing an earlier one of the task) and append its audit record.
-- KEYS[1] max-tasks hash, KEYS[2] load hash, KEYS[3] the agent's slots,
-- KEYS[4] delegations (task -> JSON without status and completed_at), KEYS[5] task ->
-- agent, KEYS[6] task -> status, KEYS[7] task -> completed_at ('' = none),
-- KEYS[8] all delegations, KEYS[9] the agent's delegations, KEYS[10] the delegations of
-- the agent ARGV[5], KEYS[11] delegations in the record's status, KEYS[12] audit log,
-- KEYS[13] audit counter, then the audit record's index sets, then the delegation sets
-- of every other status (sorted sets by delegated_at)
-- ARGV[1] agent_id, ARGV[2] task_id, ARGV[3] now, ARGV[4] JSON, ARGV[5] the agent the
-- caller believes holds the task's earlier delegation ('' = none), ARGV[6] status,
-- ARGV[7] completed_at, ARGV[8] delegated_at, ARGV[9] audit records (0 or 1),
-- ARGV[10] audit JSON, ARGV[11] its number of index sets, ARGV[12] the active status
-- Returns {'busy', agent} when the task has an active delegation to another agent
-- (nothing changed: its slot there would leak); nil for an unknown agent;
-- {'moved', agent} when the earlier, finished delegation is on another agent than
-- ARGV[5] says (nothing changed: the caller passes that agent's set and calls again);
-- else {max, outcome, load} as in acquire_slots.lua.
local agent, task = ARGV[1], ARGV[2]
local earlier = redis.call('HGET', KEYS[5], task)
-- Checked before any slot is looked at, like the other backends do.
if earlier and earlier ~= agent and redis.call('HGET', KEYS[6], task) == ARGV[12] then
  return {'busy', earlier}
end
local max = redis.call('HGET', KEYS[1], agent)
if not max then return false end
if earlier and earlier ~= agent and earlier ~= ARGV[5] then return {'moved', earlier} end
local outcome, load = take_slot(KEYS[3], tonumber(max), redis.call('ZCARD', KEYS[3]),
                                ARGV[3], task)
if outcome == 1 then redis.call('HSET', KEYS[2], agent, load) end
if outcome == 0 then return {tonumber(max), outcome, load} end
if earlier and earlier ~= agent then redis.call('ZREM', KEYS[10], task) end
redis.call('HSET', KEYS[4], task, ARGV[4])
redis.call('HSET', KEYS[5], task, agent)
redis.call('HSET', KEYS[6], task, ARGV[6])
-- A task delegated for the first time has no completion time to clear and is in no
-- other status set: two writes fewer on the common path (the columns and sets are
-- only ever written together with the task -> agent column read above).
if earlier or ARGV[7] ~= '' then redis.call('HSET', KEYS[7], task, ARGV[7]) end
redis.call('ZADD', KEYS[8], ARGV[8], task)
redis.call('ZADD', KEYS[9], ARGV[8], task)
redis.call('ZADD', KEYS[11], ARGV[8], task)
local _, _, k = append(KEYS[12], KEYS[13], tonumber(ARGV[9]), 10, 14)
if earlier then
  for i = k, #KEYS do redis.call('ZREM', KEYS[i], task) end
end
return {tonumber(max), outcome, load}
