-- Helper prepended to the scripts that read or change an agent's resource ledger.
--
-- The ledger of an agent is one hash: task_id -> allocation JSON, plus fields whose
-- names start with ':' (no ID can hold ':'), so that a capacity check reads and writes
-- one key and never sums the agent's records:
--   :max, :limit:<dim>       the agent's max_concurrent_tasks and resource ceilings
--                            (-1 = unlimited), written with the agent (write_agent.lua);
--                            absent when the agent is not registered
--   :n, :used:<dim>          how many allocations it holds and what they hold
--   :reserved:<dim>, :swept  what its *counted* reservations hold: those expiring after
--                            :swept (once a call sees a reservation expired it stops
--                            counting; expire_reservations removes it later)
--   :next                    no counted reservation expires before it (absent: none
--                            is counted), so a call looks for expired ones only when
--                            its `now` reached :next
-- <dim> is cpu_cores, memory_mb, disk_mb, network_mbps. Invariants kept by every
-- script: :reserved:* = the amounts of the reservations in the agent's sorted set (by
-- expires_at) scored above :swept, each scored at or above :next; absent fields are 0
-- (:swept absent = -inf).

-- Allocations and reservations are read without decoding their JSON (cjson.decode
-- costs more than the rest of a script): pydantic writes the four amounts first, an
-- allocation's agent_id and task_id next and its holds_slot last (the store checks
-- that field order when it is imported), and IDs never hold '"' or ','. The patterns
-- are anchored (an unanchored one is tried at every position of the string) and
-- literals (a concatenation would be made again on every call).
local AMOUNTS =
  '^{"cpu_cores":([^,]*),"memory_mb":([^,]*),"disk_mb":([^,]*),"network_mbps":([^,]*),'
-- The same, then an allocation's agent_id and task_id (one literal, hence one line).
local ALLOCATION = '^{"cpu_cores":([^,]*),"memory_mb":([^,]*),"disk_mb":([^,]*),"network_mbps":([^,]*),"agent_id":"([^"]*)","task_id":"([^"]*)",'

-- The four amounts of a record's JSON, from its fields c, m, d, n (strings).
local function four_amounts(json, c, m, d, n)
  c, m, d, n = tonumber(c), tonumber(m), tonumber(d), tonumber(n)
  if not (c and m and d and n) then
    error('not a record with resource amounts: ' .. json)
  end
  return {c, m, d, n}
end

-- The four amounts of an allocation's or a reservation's JSON.
local function amounts_of(json)
  return four_amounts(json, string.match(json, AMOUNTS))
end

-- Whether an allocation's JSON says it took its task's load slot.
local function holds_slot(json)
  return string.sub(json, -5) == 'true}'
end

-- `numbers` (values of HMGET, false = absent) from `first` on, as four numbers.
local function four(values, first)
  return {tonumber(values[first]) or 0, tonumber(values[first + 1]) or 0,
          tonumber(values[first + 2]) or 0, tonumber(values[first + 3]) or 0}
end

