-- rate_limit.lua: GCRA token bucket for issuance rate limits (docs/spec/issuer.md).
--
-- KEYS[1]  <prefix>rate:{<identity>}   the theoretical arrival time (TAT), ms
-- ARGV[1]  capacity: tokens per period, also the burst (rate_per_minute)
-- ARGV[2]  period in ms (60000)
--
-- Returns {1, 0} when a token was taken, {0, retry_after_ms} when not (retry_after_ms
-- >= 1). The clock is the Redis server's (TIME), so every issuer replica shares it;
-- Redis >= 5 replicates the script's effects, so reading TIME is allowed.

local capacity = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / capacity

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local new_tat = tat + interval
local allow_at = new_tat - period
if allow_at > now then
  return {0, math.max(1, math.ceil(allow_at - now))}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.max(1, math.ceil(new_tat - now)))
return {1, 0}
