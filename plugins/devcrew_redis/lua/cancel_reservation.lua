-- Remove a reservation of a known agent.
-- KEYS[1] reservations (id -> JSON), KEYS[2] the agent's reservations, KEYS[3] all
-- reservations by expires_at
-- ARGV[1] reservation_id
-- Returns 1 (removed), 0 (no such reservation) or -1 (it now belongs to another agent:
-- it was cancelled and made again since the caller read it; the caller retries).
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  return redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 and -1 or 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
