-- key_registry_import.lua: replace the whole key set (disaster recovery import).
--
-- KEYS[1]  <prefix>jwks:keys   hash: kid -> record JSON
-- ARGV     kid1, record1, kid2, record2, ...
--
-- Returns the number of records now stored.

redis.call('DEL', KEYS[1])
for index = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[index], ARGV[index + 1])
end
return redis.call('HLEN', KEYS[1])
