-- consume.lua: one use of an E-Key, replay check included (docs/spec/gateway.md, step 5; docs/spec/store.md).
--
-- KEYS[1]  <prefix>trace:{<trace>}        hash: limit, used, exp, sub
-- KEYS[2]  <prefix>dpop:{<trace>}:<jti>   optional (absent for mTLS-bound tokens)
-- ARGV[1]  limit (integer >= 1), ARGV[2] sub, ARGV[3] counter expiry in epoch ms
--          (absolute: the token's exp + clock skew + margin), ARGV[4] proof window in
--          ms, ARGV[5] exp (epoch seconds)
--
-- Returns {status, used, limit}; status 1 = allowed (this use counted),
-- 2 = replayed proof (nothing counted), 3 = limit reached (nothing counted),
-- 4 = the counter expiry is already past on this server's clock (nothing counted: a
-- counter created now would vanish at once and the token would start over).
--
-- The counter's expiry is set once, with PEXPIREAT, when the counter is created; it is
-- never counted from the first use, so a short-lived token cannot outlive its counter.
-- The first use of a trace fixes its limit: a later call with another limit gets the
-- stored one, so a trace can never be stretched by a second, larger request.

local trace = KEYS[1]
local jti = KEYS[2]
local limit = tonumber(ARGV[1])

local stored = redis.call('HMGET', trace, 'limit', 'used')
local stored_limit = tonumber(stored[1])
local used = tonumber(stored[2]) or 0
if stored_limit then
  limit = stored_limit
end

if jti and redis.call('EXISTS', jti) == 1 then
  return {2, used, limit}
end

if not stored_limit then
  local expires_at = tonumber(ARGV[3])
  local time = redis.call('TIME')
  local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  if expires_at <= now_ms then
    return {4, used, limit}
  end
  redis.call('HSET', trace, 'limit', limit, 'used', 0, 'exp', ARGV[5], 'sub', ARGV[2])
  redis.call('PEXPIREAT', trace, expires_at)
end

if used >= limit then
  return {3, used, limit}
end

used = redis.call('HINCRBY', trace, 'used', 1)
if jti then
  redis.call('SET', jti, '1', 'PX', math.max(1, tonumber(ARGV[4])), 'NX')
end
return {1, used, limit}
