-- Remove the given reservations that are still there and due at `now`.
-- KEYS[1] reservations (id -> JSON), KEYS[2] all reservations by expires_at,
-- KEYS[1+i] the reservations of the agent that ARGV[1+i] belonged to when read
-- ARGV[1] now, ARGV[2..] reservation ids
-- Returns the JSON of each reservation removed.
local now, out = tonumber(ARGV[1]), {}
for i = 2, #ARGV do
  local id, agent_key = ARGV[i], KEYS[i + 1]
  local due = redis.call('ZSCORE', KEYS[2], id)
  -- Skip one gone (cancelled, redeemed, expired by another caller), made again with a
  -- later expiry, or made again on another agent (a later call expires that one).
  if due and tonumber(due) <= now and redis.call('ZSCORE', agent_key, id) then
    out[#out + 1] = redis.call('HGET', KEYS[1], id)
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', agent_key, id)
  end
end
return out
