-- Remove the given reservations that are still there and due at `now`, and stop
-- counting them in their agents' ledgers.
-- KEYS[1] reservations (id -> JSON), KEYS[2] all reservations by expires_at,
-- KEYS[2i-1], KEYS[2i] (i >= 2) the reservations and the ledger of the agent that
-- ARGV[i] belonged to when read
-- ARGV[1] now, ARGV[2..] reservation ids
-- Returns the JSON of each reservation removed.
local now, out = tonumber(ARGV[1]), {}
for i = 2, #ARGV do
  local id, agent_key, ledger = ARGV[i], KEYS[2 * i - 1], KEYS[2 * i]
  local due = redis.call('ZSCORE', KEYS[2], id)
  -- Skip one gone (cancelled, redeemed, expired by another caller), made again with a
  -- later expiry, or made again on another agent (a later call expires that one).
  if due and tonumber(due) <= now and redis.call('ZSCORE', agent_key, id) then
    local json = redis.call('HGET', KEYS[1], id)
    out[#out + 1] = json
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', agent_key, id)
    local v = redis.call('HMGET', ledger, ':reserved:cpu_cores', ':reserved:memory_mb',
                         ':reserved:disk_mb', ':reserved:network_mbps', ':swept')
    local reserved = uncounted(agent_key, four(v, 1), v[5], amounts_of(json), due)
    if reserved then write_reserved(ledger, reserved, nil, nil) end
  end
end
return out
