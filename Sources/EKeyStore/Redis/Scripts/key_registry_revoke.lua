-- key_registry_revoke.lua: replace a key by its tombstone atomically.
--
-- KEYS[1]  <prefix>jwks:keys   hash: kid -> key or tombstone record JSON
--          (see key_registry_put.lua)
-- ARGV[1]  kid, ARGV[2] the tombstone JSON {"kid", "revoked_at", "forget_after"}
--
-- Returns {204, tombstone} when the key was replaced, {200, existing tombstone} when
-- the kid was revoked before (nothing changes), {404, ''} when kid is unknown.

local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then
  return {404, ''}
end
if cjson.decode(existing).revoked_at then
  return {200, existing}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {204, ARGV[2]}
