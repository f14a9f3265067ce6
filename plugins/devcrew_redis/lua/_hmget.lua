-- Helper prepended to scripts that read many hash fields at once.

-- HMGET in chunks: unpack() of a very long list would overflow Lua's C stack.
local function hmget(key, fields)
  local out = {}
  for first = 1, #fields, 1000 do
    local last = math.min(first + 999, #fields)
    local chunk = redis.call('HMGET', key, unpack(fields, first, last))
    for i = 1, #chunk do out[#out + 1] = chunk[i] end
  end
  return out
end

