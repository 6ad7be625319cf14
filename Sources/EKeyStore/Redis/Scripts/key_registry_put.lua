-- key_registry_put.lua: register a publisher key atomically (docs/spec/publisher.md).
--
-- KEYS[1]  <prefix>jwks:keys   hash: kid -> record JSON, one of
--          a key       {"kid", "jwk" (the JWK as a JSON string), "not_after"?,
--                       "registered_at", "registered_by"}
--          a tombstone {"kid", "revoked_at", "forget_after"} (the kid was revoked)
-- ARGV[1]  kid, ARGV[2] jwk JSON string, ARGV[3] the new record JSON,
-- ARGV[4]  not_after (epoch seconds) or '' for none
--
-- Returns {201, record} when new, {200, record} when the same jwk is already
-- registered under kid (its not_after is updated when ARGV[4] is given; the first
-- registered_at and registered_by stay), {409, record} when kid holds another key,
-- {410, tombstone} when kid was revoked (whatever the key).

local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return {201, ARGV[3]}
end

local record = cjson.decode(existing)
if record.revoked_at then
  return {410, existing}
end
if record.jwk ~= ARGV[2] then
  return {409, existing}
end
if ARGV[4] ~= '' and record.not_after ~= tonumber(ARGV[4]) then
  record.not_after = tonumber(ARGV[4])
  existing = cjson.encode(record)
  redis.call('HSET', KEYS[1], ARGV[1], existing)
end
return {200, existing}
