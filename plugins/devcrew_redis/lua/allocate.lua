-- Record an allocation and take the task's load slot, if it fits: the agent's limits
-- minus what its allocations and counted reservations hold (its ledger), and a free
-- slot unless the task holds one there already. A live reservation it names on the
-- same agent is redeemed (its capacity becomes the allocation's) in the same step.
-- With victims (preempt_and_allocate): only if every victim still has an allocation
-- on the agent, and counting without them; then they are removed, with their slots.
-- KEYS[1] the agent's ledger (see _ledger.lua), KEYS[2] the agent's slots, KEYS[3] load
-- hash, KEYS[4] set of agents with allocations, and only when the allocation names a
-- reservation or the script asked for them: KEYS[5] reservations (id -> JSON), KEYS[6]
-- the agent's reservations (id by expires_at), KEYS[7] all reservations by expires_at
-- ARGV[1] allocation JSON ending '"holds_slot":true}' (stored as it is when the task
-- takes its slot here, the common case), ARGV[2] now, ARGV[3..] victims (distinct
-- task ids)
-- Returns 1 or 0 when it allocated (1: it took the slot, 0: the task held it), the JSON
-- of the task's existing allocation (nothing changed), or a word: 'gone' (a victim has
-- no allocation: nothing changed), 'missing' (unknown agent), 'full' (resources), 'busy'
-- (no free slot), 'keys' (nothing changed: a counted reservation has expired and
-- KEYS[5..7] are needed to stop counting it; call again with them). Scalar replies: an
-- array costs the client more to read.
local json, now = ARGV[1], ARGV[2]
local c, m, d, n, agent, task = string.match(json, ALLOCATION)
local request = four_amounts(json, c, m, d, n)
if string.sub(json, -18) ~= '"holds_slot":true}' then
  return redis.error_reply('allocation JSON must end with "holds_slot":true')
end
-- The reservation to redeem: none when the JSON says null.
local redeem = string.find(json, ',"reservation_id":"', 1, true)
if redeem then redeem = string.match(json, '^[^"]*', redeem + 19) end
local freed, victims, victim_slots = {0, 0, 0, 0}, {}, 0
for i = 3, #ARGV do
  local held = redis.call('HGET', KEYS[1], ARGV[i])
  if not held then return 'gone' end
  local amounts = amounts_of(held)
  for dim = 1, 4 do freed[dim] = freed[dim] + amounts[dim] end
  -- A victim frees a slot if it took one and still holds it.
  local slot = holds_slot(held) and redis.call('ZSCORE', KEYS[2], ARGV[i]) ~= false
  if slot then victim_slots = victim_slots + 1 end
  victims[#victims + 1] = {ARGV[i], slot}
end
local v = redis.call('HMGET', KEYS[1], ':max', ':limit:cpu_cores', ':limit:memory_mb',
                     ':limit:disk_mb', ':limit:network_mbps', task, ':n', ':used:cpu_cores',
                     ':used:memory_mb', ':used:disk_mb', ':used:network_mbps', ':next')
if not v[1] then return 'missing' end
if v[6] then return v[6] end
local count, used = tonumber(v[7]) or 0, four(v, 8)
-- Without :next no reservation is counted: the reserved half is zero.
local reserved, swept, soonest, resweep = {0, 0, 0, 0}, false, v[12], false
local redeemed, expires, redeemed_amounts
if soonest or redeem then
  if #KEYS < 7 and (redeem or tonumber(now) >= tonumber(soonest)) then return 'keys' end
  local r = redis.call('HMGET', KEYS[1], ':reserved:cpu_cores', ':reserved:memory_mb',
                       ':reserved:disk_mb', ':reserved:network_mbps', ':swept')
  reserved, swept, soonest, resweep = sweep(KEYS[5], KEYS[6], four(r, 1), r[5], soonest,
                                            now)
  if redeem then
    expires = redis.call('ZSCORE', KEYS[6], redeem)
    -- Live: not expired at `now`, and still counted (no call saw it expired).
    if expires and tonumber(expires) > tonumber(now)
        and not (swept and tonumber(expires) <= tonumber(swept)) then
      redeemed = redis.call('HGET', KEYS[5], redeem)
      redeemed_amounts = amounts_of(redeemed)
    end
  end
end
local total = {}
for dim = 1, 4 do
  total[dim] = used[dim] - freed[dim] + reserved[dim]
  if redeemed then total[dim] = total[dim] - redeemed_amounts[dim] end
end
if not fits(four(v, 2), total, request) then
  if resweep then write_reserved(KEYS[1], reserved, swept, soonest) end
  return 'full'
end
-- The slot comes last among the checks: taking it is the first write.
local max = tonumber(v[1])
local load = redis.call('ZCARD', KEYS[2])
local took = 0
if load - victim_slots < max then
  -- NX adds new members only: 0 means the task holds its slot already.
  took = redis.call('ZADD', KEYS[2], 'NX', now, task)
elseif not redis.call('ZSCORE', KEYS[2], task) then
  if resweep then write_reserved(KEYS[1], reserved, swept, soonest) end
  return 'busy'
end
for _, victim in ipairs(victims) do
  redis.call('HDEL', KEYS[1], victim[1])
  if victim[2] then redis.call('ZREM', KEYS[2], victim[1]) end
end
if took == 1 or victim_slots > 0 then
  redis.call('HSET', KEYS[3], agent, load + took - victim_slots)
end
if redeemed then
  redis.call('HDEL', KEYS[5], redeem)
  redis.call('ZREM', KEYS[6], redeem)
  redis.call('ZREM', KEYS[7], redeem)
  reserved = uncounted(KEYS[6], reserved, swept, redeemed_amounts, expires) or reserved
  resweep = true
end
if resweep then write_reserved(KEYS[1], reserved, swept, soonest) end
if count == 0 then redis.call('SADD', KEYS[4], agent) end
if took == 0 then json = string.sub(json, 1, -6) .. 'false}' end
for dim = 1, 4 do used[dim] = used[dim] - freed[dim] + request[dim] end
redis.call('HSET', KEYS[1], task, json, ':n', count - #victims + 1,
           ':used:cpu_cores', used[1], ':used:memory_mb', used[2],
           ':used:disk_mb', used[3], ':used:network_mbps', used[4])
return took
