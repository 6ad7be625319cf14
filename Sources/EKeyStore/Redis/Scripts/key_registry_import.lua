-- key_registry_import.lua: replace the key set, keeping every tombstone (disaster
-- recovery import).
--
-- KEYS[1]  <prefix>jwks:keys   hash: kid -> key or tombstone record JSON
--          (see key_registry_put.lua)
-- ARGV[1]  n, the number of keys; then n pairs kid, key record; then pairs kid,
--          tombstone record
--
-- The stored tombstones and the imported ones are merged (of one kid, the later
-- forget_after is kept). When a key of the import has a merged tombstone, nothing
-- changes and {409, tombstone} is returned; otherwise the stored keys are replaced by
-- the imported ones and {200, n} is returned.

local count = tonumber(ARGV[1])
local last_key = 1 + 2 * count
local tombstones = {}

local stored = redis.call('HGETALL', KEYS[1])
for index = 1, #stored, 2 do
  local record = cjson.decode(stored[index + 1])
  if record.revoked_at then
    tombstones[stored[index]] = {stored[index + 1], record.forget_after}
  end
end
for index = last_key + 1, #ARGV, 2 do
  local forget_after = cjson.decode(ARGV[index + 1]).forget_after
  local current = tombstones[ARGV[index]]
  if not current or forget_after > current[2] then
    tombstones[ARGV[index]] = {ARGV[index + 1], forget_after}
  end
end
for index = 2, last_key, 2 do
  local tombstone = tombstones[ARGV[index]]
  if tombstone then
    return {409, tombstone[1]}
  end
end

redis.call('DEL', KEYS[1])
for index = 2, last_key, 2 do
  redis.call('HSET', KEYS[1], ARGV[index], ARGV[index + 1])
end
for kid, tombstone in pairs(tombstones) do
  redis.call('HSET', KEYS[1], kid, tombstone[1])
end
return {200, count}
