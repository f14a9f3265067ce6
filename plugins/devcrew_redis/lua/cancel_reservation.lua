-- Remove a reservation of a known agent and stop counting it in the agent's ledger.
-- KEYS[1] reservations (id -> JSON), KEYS[2] the agent's reservations, KEYS[3] all
-- reservations by expires_at, KEYS[4] the agent's ledger (see _ledger.lua)
-- ARGV[1] reservation_id
-- Returns 1 (removed), 0 (no such reservation) or -1 (it now belongs to another agent:
-- it was cancelled and made again since the caller read it; the caller retries).
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score then
  return redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 and -1 or 0
end
local json = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local v = redis.call('HMGET', KEYS[4], ':reserved:cpu_cores', ':reserved:memory_mb',
                     ':reserved:disk_mb', ':reserved:network_mbps', ':swept')
local reserved = uncounted(KEYS[2], four(v, 1), v[5], amounts_of(json), score)
if reserved then write_reserved(KEYS[4], reserved, nil, nil) end
return 1
