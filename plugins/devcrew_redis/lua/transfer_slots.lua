-- Hand held load slots on to other tasks; the agent's load never drops in between, so
-- no other claimant can take a slot being handed on.
-- KEYS[1] load hash, KEYS[i] (i >= 2) the slots of agent ARGV[3i-5]; ARGV[3i-4] the
-- task giving its slot, ARGV[3i-3] the task taking it
-- Returns one 1 (handed on) or 0 (the giver held no slot: nothing changed) per move.
local out = {}
for i = 2, #KEYS do
  local agent, giver, taker = ARGV[3 * i - 5], ARGV[3 * i - 4], ARGV[3 * i - 3]
  local taken_at = redis.call('ZSCORE', KEYS[i], giver)
  if taken_at then
    redis.call('ZREM', KEYS[i], giver)
    -- The taker keeps the giver's place; if it holds a slot already, the giver's is
    -- simply freed (and the load drops by one).
    if redis.call('ZADD', KEYS[i], 'NX', taken_at, taker) == 0 then
      redis.call('HSET', KEYS[1], agent, redis.call('ZCARD', KEYS[i]))
    end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
