-- Helper prepended to allocate.lua and reserve.lua: what an agent has committed, and
-- whether a request still fits its limits. Amounts are {cpu, memory, disk, network}.
local DIMS = {'cpu_cores', 'memory_mb', 'disk_mb', 'network_mbps'}
-- The tolerance of devcrew_core.stores.base.fits: 0.1 + 0.2 cores fit a 0.3 limit.
local EPS = 1e-9

local function add(total, json)
  local record = cjson.decode(json)
  for i, dim in ipairs(DIMS) do total[i] = total[i] + (record[dim] or 0) end
end

-- The agent's allocations plus its reservations still live at `now`, leaving out the
-- reservation `skip`; the second result says whether `skip` was live.
local function committed(allocations, reservations, agent_reservations, now, skip)
  local used, skipped = {0, 0, 0, 0}, false
  for _, json in ipairs(redis.call('HVALS', allocations)) do add(used, json) end
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', agent_reservations, '(' .. now, '+inf')) do
    if id == skip then
      skipped = true
    else
      add(used, redis.call('HGET', reservations, id))
    end
  end
  return used, skipped
end

-- `limits` is the JSON list of the four ceilings; a negative one means unlimited.
local function fits(limits, used, request)
  local ceiling = cjson.decode(limits)
  for i = 1, 4 do
    if ceiling[i] >= 0 and used[i] + request[i] > ceiling[i] + EPS then return false end
  end
  return true
end

