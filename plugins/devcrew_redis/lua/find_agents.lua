-- The agents in every given index set, with their JSON and load, in one round trip.
-- KEYS[1] agents hash (id -> JSON), KEYS[2] load hash (id -> tasks holding slots),
-- KEYS[3..] index sets (capabilities, type) an agent must all be in; none = every agent
-- Returns {ids, JSONs, loads} (unordered: the caller sorts).
local ids
if #KEYS == 2 then
  ids = redis.call('HKEYS', KEYS[1])
elseif #KEYS == 3 then
  ids = redis.call('SMEMBERS', KEYS[3])
else
  ids = redis.call('SINTER', unpack(KEYS, 3))
end
if #ids == 0 then return {{}, {}, {}} end
return {ids, hmget(KEYS[1], ids), hmget(KEYS[2], ids)}
