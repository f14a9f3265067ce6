-- Insert or replace an agent (its columns, index entries and the copy of its limits in
-- its ledger) if its version is still the one the caller read (compare-and-set; the
-- caller retries on a conflict). The agent's load slots are never touched.
-- KEYS[1] agents hash, KEYS[2] max-tasks hash, KEYS[3] the agent's ledger (see
-- _ledger.lua), KEYS[4] versions hash, KEYS[5] version clock, KEYS[6] the agent's slots,
-- KEYS[7 .. 6+n] index sets to leave, KEYS[7+n ..] index sets to join
-- ARGV[1] agent_id, ARGV[2] expected version ('' = absent), ARGV[3] JSON,
-- ARGV[4] max tasks, ARGV[5..8] resource ceilings (-1 = unlimited), ARGV[9] n
-- Returns nil on a version conflict, else the tasks holding slots.
local id = ARGV[1]
if (redis.call('HGET', KEYS[4], id) or '') ~= ARGV[2] then return false end
local leave = tonumber(ARGV[9])
for i = 7, 6 + leave do redis.call('SREM', KEYS[i], id) end
for i = 7 + leave, #KEYS do redis.call('SADD', KEYS[i], id) end
redis.call('HSET', KEYS[1], id, ARGV[3])
redis.call('HSET', KEYS[2], id, ARGV[4])
redis.call('HSET', KEYS[3], ':max', ARGV[4], ':limit:cpu_cores', ARGV[5],
           ':limit:memory_mb', ARGV[6], ':limit:disk_mb', ARGV[7],
           ':limit:network_mbps', ARGV[8])
redis.call('HSET', KEYS[4], id, redis.call('INCR', KEYS[5]))
return redis.call('ZRANGE', KEYS[6], 0, -1)
