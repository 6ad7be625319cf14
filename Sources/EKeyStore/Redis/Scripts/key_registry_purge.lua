-- key_registry_purge.lua: forget expired keys and tombstones atomically.
--
-- KEYS[1]  <prefix>jwks:keys   hash: kid -> key or tombstone record JSON
--          (see key_registry_put.lua)
-- ARGV[1]  keys whose not_after is at or before this (epoch seconds) go; keys
--          without not_after stay
-- ARGV[2]  tombstones whose forget_after is before this (epoch seconds) go
--
-- Returns the number of records removed. Deciding here, not after a listing, means a
-- key revoked meanwhile is never removed with its fresh tombstone.

local key_cutoff = tonumber(ARGV[1])
local tombstone_cutoff = tonumber(ARGV[2])
local removed = 0
local stored = redis.call('HGETALL', KEYS[1])
for index = 1, #stored, 2 do
  local record = cjson.decode(stored[index + 1])
  local expired
  if record.revoked_at then
    expired = record.forget_after < tombstone_cutoff
  else
    expired = type(record.not_after) == 'number' and record.not_after <= key_cutoff
  end
  if expired then
    redis.call('HDEL', KEYS[1], stored[index])
    removed = removed + 1
  end
end
return removed
