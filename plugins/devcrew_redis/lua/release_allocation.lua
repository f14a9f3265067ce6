-- Remove an allocation and return it, freeing the load slot it took (if it took one)
-- and its share of the agent's ledger; HDEL makes the release happen once.
-- KEYS[1] the agent's ledger (see _ledger.lua), KEYS[2] the agent's slots, KEYS[3] load
-- hash, KEYS[4] set of agents with allocations
-- ARGV[1] agent_id, ARGV[2] task_id
-- Returns the allocation's JSON, or nil if there was none.
local agent, task = ARGV[1], ARGV[2]
local v = redis.call('HMGET', KEYS[1], task, ':n', ':used:cpu_cores', ':used:memory_mb',
                     ':used:disk_mb', ':used:network_mbps')
local json = v[1]
if not json then return false end
redis.call('HDEL', KEYS[1], task)
if holds_slot(json) and redis.call('ZREM', KEYS[2], task) == 1 then
  redis.call('HINCRBY', KEYS[3], agent, -1)  -- the load is the number of slots held
end
local count = (tonumber(v[2]) or 1) - 1
if count <= 0 then
  redis.call('SREM', KEYS[4], agent)
  -- Exact zero: no rounding left over from the additions and subtractions.
  redis.call('HSET', KEYS[1], ':n', 0, ':used:cpu_cores', 0, ':used:memory_mb', 0,
             ':used:disk_mb', 0, ':used:network_mbps', 0)
else
  local amounts, used = amounts_of(json), four(v, 3)
  redis.call('HSET', KEYS[1], ':n', count, ':used:cpu_cores', used[1] - amounts[1],
             ':used:memory_mb', used[2] - amounts[2], ':used:disk_mb', used[3] - amounts[3],
             ':used:network_mbps', used[4] - amounts[4])
end
return json
