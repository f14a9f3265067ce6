-- Records of an append-only log after a seq, in seq order, in one round trip.
-- KEYS[1] log (seq -> JSON), KEYS[2] its counter, KEYS[3] (optional) an index of seqs
-- ARGV[1] after, ARGV[2] limit (> 0)
-- Returns {seqs, JSONs}.
local after, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local seqs
if KEYS[3] then
  seqs = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[1], '+inf', 'LIMIT', 0, limit)
else
  -- Seqs are dense (1, 2, 3, ...): an unfiltered read needs no index.
  local last = math.min(tonumber(redis.call('GET', KEYS[2]) or 0), after + limit)
  seqs = {}
  for seq = after + 1, last do seqs[#seqs + 1] = string.format('%d', seq) end
end
if #seqs == 0 then return {{}, {}} end
return {seqs, hmget(KEYS[1], seqs)}
