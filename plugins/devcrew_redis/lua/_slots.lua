-- Helper prepended to scripts that take load slots.

-- Take a load slot for `task` in the sorted set `slots` of an agent that holds `load`
-- of its `max` slots. Returns the outcome (0 refused, 1 taken, 2 held already) and the
-- load afterwards.
local function take_slot(slots, max, load, now, task)
  if load < max then
    -- NX adds new members only: 0 means the task holds its slot already.
    if redis.call('ZADD', slots, 'NX', now, task) == 1 then return 1, load + 1 end
    return 2, load
  end
  if redis.call('ZSCORE', slots, task) then return 2, load end
  return 0, load
end

