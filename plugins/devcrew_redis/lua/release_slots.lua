-- Free load slots. ZREM removes a member once, so of several callers racing to free
-- the same slot exactly one is told it freed it.
-- KEYS[1] load hash, KEYS[i] (i >= 2) the slots of agent ARGV[2i-3], ARGV[2i-2] a task id
-- Returns one 1 (freed) or 0 (was not held) per slot.
local out = {}
for i = 2, #KEYS do
  local agent, task = ARGV[2 * i - 3], ARGV[2 * i - 2]
  local freed = redis.call('ZREM', KEYS[i], task)
  if freed == 1 then redis.call('HSET', KEYS[1], agent, redis.call('ZCARD', KEYS[i])) end
  out[#out + 1] = freed
end
return out
