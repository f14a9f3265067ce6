-- Hold capacity for a future task if it fits the agent's limits minus what its
-- allocations and counted reservations hold (its ledger).
-- KEYS[1] the agent's ledger (see _ledger.lua), KEYS[2] reservations (id -> JSON),
-- KEYS[3] the agent's reservations (id by expires_at), KEYS[4] all reservations by
-- expires_at
-- ARGV[1] reservation_id, ARGV[2] JSON, ARGV[3] now, ARGV[4] expires_at,
-- ARGV[5..8] the requested amounts
-- Returns 'missing' (unknown agent), 'exists' (ID taken), 'full' or 'reserved'.
local v = redis.call('HMGET', KEYS[1], ':max', ':limit:cpu_cores', ':limit:memory_mb',
                     ':limit:disk_mb', ':limit:network_mbps', ':used:cpu_cores',
                     ':used:memory_mb', ':used:disk_mb', ':used:network_mbps',
                     ':reserved:cpu_cores', ':reserved:memory_mb', ':reserved:disk_mb',
                     ':reserved:network_mbps', ':swept', ':next')
if not v[1] then return 'missing' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'exists' end
local used = four(v, 6)
local reserved, swept, soonest, resweep = sweep(KEYS[2], KEYS[3], four(v, 10), v[14],
                                                v[15], ARGV[3])
local request = {tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}
local total = {}
for d = 1, 4 do total[d] = used[d] + reserved[d] end
if not fits(four(v, 2), total, request) then
  if resweep then write_reserved(KEYS[1], reserved, swept, soonest) end
  return 'full'
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
-- Counted unless it expired before this call looked (it is stored all the same).
if not (swept and tonumber(ARGV[4]) <= tonumber(swept)) then
  for d = 1, 4 do reserved[d] = reserved[d] + request[d] end
  if not soonest or tonumber(ARGV[4]) < tonumber(soonest) then soonest = ARGV[4] end
  resweep = true
end
if resweep then write_reserved(KEYS[1], reserved, swept, soonest) end
return 'reserved'
