-- Helper prepended to scripts that append to the audit trail or the event log.

-- Append `n` records to a log (hash seq -> JSON) numbered by `counter`: ARGV[a] is a
-- record's JSON and ARGV[a + 1] how many index sets it joins, which are next in KEYS
-- from KEYS[k]. Returns the first seq (0 when n is 0) and the advanced cursors a, k.
local function append(log, counter, n, a, k)
  if n == 0 then return 0, a, k end
  local first = redis.call('INCRBY', counter, n) - n + 1
  for number = first, first + n - 1 do
    -- Formatted as an integer: Lua would write 1e+15 for a large number.
    local seq = string.format('%d', number)
    redis.call('HSET', log, seq, ARGV[a])
    for _ = 1, tonumber(ARGV[a + 1]) do
      redis.call('ZADD', KEYS[k], seq, seq)
      k = k + 1
    end
    a = a + 2
  end
  return first, a, k
end

