-- Group commit: task states, audit records and events in one atomic step.
-- Audit records and events get the next numbers of their counters (1, 2, 3, ...).
-- KEYS[1] audit (seq -> JSON), KEYS[2] audit counter, KEYS[3] events (seq -> JSON),
-- KEYS[4] events counter, then one task-state hash per run, then the index sets of
-- each audit record, then those of each event, in ARGV order
-- ARGV[1] runs, ARGV[2] audit records, ARGV[3] events; then per run: the number of its
-- states and (task_id, JSON) for each; then per audit record and per event: its JSON
-- and the number of index sets it joins
-- Returns {first audit seq, first event seq} (0 when none were written).
local a, k = 4, 5
for _ = 1, tonumber(ARGV[1]) do
  local states = KEYS[k]
  k = k + 1
  for _ = 1, tonumber(ARGV[a]) do
    redis.call('HSET', states, ARGV[a + 1], ARGV[a + 2])
    a = a + 2
  end
  a = a + 1
end
local first_audit, first_event
first_audit, a, k = append(KEYS[1], KEYS[2], tonumber(ARGV[2]), a, k)
first_event, a, k = append(KEYS[3], KEYS[4], tonumber(ARGV[3]), a, k)
return {first_audit, first_event}
