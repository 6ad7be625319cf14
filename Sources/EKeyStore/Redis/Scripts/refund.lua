-- refund.lua: give one use of a trace back (the gateway sent nothing upstream).
--
-- KEYS[1]  <prefix>trace:{<trace>}
--
-- Returns 0 when the trace has no counter (expired or never used: nothing to give
-- back), 1 when its count is already zero, 2 when one use was given back.
-- The proof's jti stays remembered: a retry needs a fresh proof, as any retry does.

local used = redis.call('HGET', KEYS[1], 'used')
if not used then
  return 0
end
if tonumber(used) <= 0 then
  return 1
end
redis.call('HINCRBY', KEYS[1], 'used', -1)
return 2
