-- Delegate a task: take a load slot on the agent and, when it was taken, store the
-- delegation (replacing an earlier one of the task) and append its audit record.
-- KEYS[1] max-tasks hash, KEYS[2] load hash, KEYS[3] the agent's slots,
-- KEYS[4] delegations (task -> record JSON), KEYS[5] all delegations, KEYS[6] the
-- agent's delegations, KEYS[7] the delegations of the agent ARGV[3] (sorted sets by
-- delegated_at), KEYS[8] audit log, KEYS[9] audit counter, then the audit record's
-- index sets
-- ARGV[1] the record's JSON (task_id, agent_id first; status after string fields only:
-- see the field-order guard in store.py), ARGV[2] now, ARGV[3] the agent the caller
-- believes holds the task's earlier delegation ('' = none), ARGV[4] delegated_at,
-- ARGV[5] audit records (0 or 1), ARGV[6] audit JSON, ARGV[7] its number of index sets
-- Returns {'busy', agent} when the task has an active delegation to another agent
-- (nothing changed: its slot there would leak); nil for an unknown agent;
-- {'moved', agent} when the earlier, finished delegation is on another agent than
-- ARGV[3] says (nothing changed: the caller passes that agent's set and calls again);
-- else {max, outcome, load} as in acquire_slots.lua.
local json = ARGV[1]
local task, agent = string.match(json, '^{"task_id":"([^"]*)","agent_id":"([^"]*)"')
local old = redis.call('HGET', KEYS[4], task)
local earlier
if old then
  earlier = string.match(old, '^{"task_id":"[^"]*","agent_id":"([^"]*)"')
  -- Checked before any slot is looked at, like the other backends do.
  if earlier ~= agent and string.match(old, ',"status":"([^"]*)"') == 'active' then
    return {'busy', earlier}
  end
end
local max = redis.call('HGET', KEYS[1], agent)
if not max then return false end
if earlier and earlier ~= agent and earlier ~= ARGV[3] then return {'moved', earlier} end
local outcome, load = take_slot(KEYS[3], tonumber(max), redis.call('ZCARD', KEYS[3]),
                                ARGV[2], task)
if outcome == 1 then redis.call('HSET', KEYS[2], agent, load) end
if outcome == 0 then return {tonumber(max), outcome, load} end
if earlier and earlier ~= agent then redis.call('ZREM', KEYS[7], task) end
redis.call('HSET', KEYS[4], task, json)
redis.call('ZADD', KEYS[5], ARGV[4], task)
redis.call('ZADD', KEYS[6], ARGV[4], task)
append(KEYS[8], KEYS[9], tonumber(ARGV[5]), 6, 10)
return {tonumber(max), outcome, load}
