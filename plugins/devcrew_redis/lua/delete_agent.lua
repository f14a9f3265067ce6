-- Remove an agent, its load slots and its index entries if its version is still the
-- one the caller read. Its allocations and reservations stay (as in every backend).
-- KEYS[1] agents, KEYS[2] max-tasks, KEYS[3] limits, KEYS[4] versions, KEYS[5] load
-- (all hashes by agent_id), KEYS[6] the agent's slots, KEYS[7..] its index sets
-- ARGV[1] agent_id, ARGV[2] expected version
-- Returns nil on a version conflict, else the tasks that held slots.
local id = ARGV[1]
if (redis.call('HGET', KEYS[4], id) or '') ~= ARGV[2] then return false end
local held = redis.call('ZRANGE', KEYS[6], 0, -1)
for i = 1, 5 do redis.call('HDEL', KEYS[i], id) end
redis.call('DEL', KEYS[6])
for i = 7, #KEYS do redis.call('SREM', KEYS[i], id) end
return held
