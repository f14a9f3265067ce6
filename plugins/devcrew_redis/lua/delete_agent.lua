-- Remove an agent, its load slots and its index entries if its version is still the
-- one the caller read. Its allocations and reservations stay (as in every backend), and
-- so does what its ledger says they hold; the ledger loses the agent's limits.
-- KEYS[1] agents, KEYS[2] max-tasks, KEYS[3] versions, KEYS[4] load (all hashes by
-- agent_id), KEYS[5] the agent's ledger (see _ledger.lua), KEYS[6] the agent's slots,
-- KEYS[7..] its index sets
-- ARGV[1] agent_id, ARGV[2] expected version
-- Returns nil on a version conflict, else the tasks that held slots.
local id = ARGV[1]
if (redis.call('HGET', KEYS[3], id) or '') ~= ARGV[2] then return false end
local held = redis.call('ZRANGE', KEYS[6], 0, -1)
for i = 1, 4 do redis.call('HDEL', KEYS[i], id) end
redis.call('HDEL', KEYS[5], ':max', ':limit:cpu_cores', ':limit:memory_mb',
           ':limit:disk_mb', ':limit:network_mbps')
redis.call('DEL', KEYS[6])
for i = 7, #KEYS do redis.call('SREM', KEYS[i], id) end
return held
