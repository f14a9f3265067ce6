-- Helper prepended (after _ledger.lua) to the scripts that check capacity or change
-- reservations: the reserved half of a ledger, and the capacity check.

-- The tolerance of devcrew_core.stores.base.fits: 0.1 + 0.2 cores fit a 0.3 limit.
local EPS = 1e-9

-- The reserved amounts after dropping the reservations that expired by `now` (a
-- string), given the ledger's :swept and :next (`soonest`; strings, or false when
-- absent). Returns the amounts, :swept, :next and whether they changed (the caller
-- writes them then, with write_reserved).
local function sweep(reservations, agent_reservations, reserved, swept, soonest, now)
  if not soonest or tonumber(now) < tonumber(soonest) then
    return reserved, swept, soonest, false  -- nothing counted has expired: no look
  end
  local stale = redis.call('ZRANGEBYSCORE', agent_reservations,
                           swept and ('(' .. swept) or '-inf', now)
  local after = redis.call('ZRANGEBYSCORE', agent_reservations, '(' .. now, '+inf',
                           'WITHSCORES', 'LIMIT', 0, 1)
  if #after == 0 then
    return {0, 0, 0, 0}, now, false, true  -- exact zero: no rounding left over
  end
  for _, id in ipairs(stale) do
    local amounts = amounts_of(redis.call('HGET', reservations, id))
    for i = 1, 4 do reserved[i] = reserved[i] - amounts[i] end
  end
  return reserved, now, after[2], true
end

-- A reservation scored `score` left the agent's sorted set (cancelled, redeemed,
-- expired): the reserved amounts without it if it was counted, else nil. `reserved`
-- and `swept` are the ledger's; `amounts` the reservation's.
local function uncounted(agent_reservations, reserved, swept, amounts, score)
  if swept and tonumber(score) <= tonumber(swept) then return nil end
  if redis.call('ZCOUNT', agent_reservations, swept and ('(' .. swept) or '-inf',
                '+inf') == 0 then
    return {0, 0, 0, 0}
  end
  for i = 1, 4 do reserved[i] = reserved[i] - amounts[i] end
  return reserved
end

-- HSET the reserved amounts of a ledger, and :swept and :next unless nil (false:
-- remove :next).
local function write_reserved(ledger, reserved, swept, soonest)
  redis.call('HSET', ledger, ':reserved:cpu_cores', reserved[1], ':reserved:memory_mb',
             reserved[2], ':reserved:disk_mb', reserved[3], ':reserved:network_mbps',
             reserved[4])
  if swept then redis.call('HSET', ledger, ':swept', swept) end
  if soonest then
    redis.call('HSET', ledger, ':next', soonest)
  elseif soonest == false then
    redis.call('HDEL', ledger, ':next')
  end
end

-- True when `used` plus `request` stays within `limits` (-1 = unlimited) everywhere.
local function fits(limits, used, request)
  for i = 1, 4 do
    if limits[i] >= 0 and used[i] + request[i] > limits[i] + EPS then return false end
  end
  return true
end

