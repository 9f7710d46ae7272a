"""Scripts that read or replace a scope's structures whole: snapshots, restores, counts."""

# Read a scope's structures at one instant. KEYS: the structures; ARGV: their types ('hash' or
# 'zset'), in the same order. Returns {time = {seconds, microseconds}, data = {flat lists}}.
SNAPSHOT = """
local data = {}
for i, key in ipairs(KEYS) do
  if ARGV[i] == 'hash' then
    data[i] = redis.call('HGETALL', key)
  else
    data[i] = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  end
end
return cjson.encode({time = redis.call('TIME'), data = data})
"""

# Replace a scope's structures with a snapshot's. KEYS: the structures; ARGV[1]: JSON list, per
# key, of {type, entries (flat: field, value, ... or member, score, ...)}.
RESTORE = """
local structures = cjson.decode(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('DEL', key)
  local s = structures[i]
  local entries = s.entries
  for j = 1, #entries, 2 do
    if s.type == 'hash' then
      redis.call('HSET', key, entries[j], entries[j + 1])
    else
      redis.call('ZADD', key, entries[j + 1], entries[j])
    end
  end
end
return #KEYS
"""

# Beds by status, patients waiting and blocked beds by reason, for one ward, in one round trip.
# KEYS: 1 status hash, 2 waiting zset, 3 blocked_reason hash. Returns a flat list: status,
# count, ..., 'blocked:<reason>', count, ..., then '_waiting', count.
COUNTS = """
local counts = {}
for _, status in ipairs(redis.call('HVALS', KEYS[1])) do
  counts[status] = (counts[status] or 0) + 1
end
for _, reason in ipairs(redis.call('HVALS', KEYS[3])) do
  counts['blocked:' .. reason] = (counts['blocked:' .. reason] or 0) + 1
end
local flat = {}
for status, n in pairs(counts) do
  flat[#flat + 1] = status
  flat[#flat + 1] = n
end
flat[#flat + 1] = '_waiting'
flat[#flat + 1] = redis.call('ZCARD', KEYS[2])
return flat
"""
