-- Records listed by a sorted-set index, in index order, in one round trip.
-- KEYS[1..h] hashes (id -> a column of the records), KEYS[h+1] the index (ids by
-- score), KEYS[h+2..] further indexes a record must also be in
-- ARGV[1], ARGV[2] the score range (min, max) read from the index, ARGV[3] h
-- Returns {ids, values of KEYS[1], ..., values of KEYS[h]}.
local h = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', KEYS[h + 1], ARGV[1], ARGV[2])
if #KEYS > h + 1 then
  local kept = {}
  for _, id in ipairs(ids) do
    local everywhere = true
    for i = h + 2, #KEYS do
      if not redis.call('ZSCORE', KEYS[i], id) then
        everywhere = false
        break
      end
    end
    if everywhere then kept[#kept + 1] = id end
  end
  ids = kept
end
local out = {ids}
for i = 1, h do out[i + 1] = #ids == 0 and {} or hmget(KEYS[i], ids) end
return out
