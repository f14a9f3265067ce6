-- Take load slots for tasks on one agent, in order, while it has free ones.
-- KEYS[1] max-tasks hash, KEYS[2] load hash, KEYS[3] the agent's slots (task by taken-at)
-- ARGV[1] agent_id, ARGV[2] now, ARGV[3..] task ids
-- Returns nil for an unknown agent, else {max, outcome, load, outcome, load, ...} with
-- one outcome and load-afterwards per task; outcome 0 = refused, 1 = taken, 2 = held.
local max = redis.call('HGET', KEYS[1], ARGV[1])
if not max then return false end
max = tonumber(max)
local load = redis.call('ZCARD', KEYS[3])
local before = load
local out = {max}
for i = 3, #ARGV do
  local outcome
  outcome, load = take_slot(KEYS[3], max, load, ARGV[2], ARGV[i])
  out[#out + 1] = outcome
  out[#out + 1] = load
end
if load ~= before then redis.call('HSET', KEYS[2], ARGV[1], load) end
return out
