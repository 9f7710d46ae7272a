"""Lua scripts that change one ward's beds atomically (all keys share the ward's hash tag).

KEYS (both scripts): 1 status hash (bed -> status), 2 occupant hash (bed -> patient),
3 patient_bed hash (patient -> bed), 4 available zset (bed, by ward order), 5 order hash
(bed -> ordinal), 6 waiting zset (patient, by request time), 7 seen key of the cause event.
Each script stores its result under the seen key: a redelivered event gets the same result back
and changes nothing. Every applied change is published on the changes channel.
"""

_ASSIGN_WAITING = """
local function occupy(bed, patient)
  redis.call('HSET', KEYS[1], bed, 'occupied')
  redis.call('ZREM', KEYS[4], bed)
  redis.call('HSET', KEYS[2], bed, patient)
  redis.call('HSET', KEYS[3], patient, bed)
  redis.call('ZREM', KEYS[6], patient)
end
local function finish(result, ttl, channel)
  local encoded = cjson.encode(result)
  redis.call('SET', KEYS[7], encoded, 'EX', ttl)
  if result['outcome'] == 'applied' then redis.call('PUBLISH', channel, encoded) end
  return encoded
end
"""

ALLOCATE = (
    _ASSIGN_WAITING
    + """
-- ARGV: 1 patient, 2 seen ttl, 3 channel, 4 requested_at (epoch seconds), 5 ward
local seen = redis.call('GET', KEYS[7])
if seen then return seen end
local patient = ARGV[1]
local has = redis.call('HGET', KEYS[3], patient)
if has then return finish({outcome='already', bed=has, ward=ARGV[5]}, ARGV[2], ARGV[3]) end
local popped = redis.call('ZPOPMIN', KEYS[4])
if #popped == 0 then
  redis.call('ZADD', KEYS[6], 'NX', ARGV[4], patient)
  return finish({outcome='waiting', ward=ARGV[5]}, ARGV[2], ARGV[3])
end
local bed = popped[1]
occupy(bed, patient)
return finish({outcome='applied', ward=ARGV[5], bed=bed, previous='available',
  changes={{bed, 'available', 'occupied'}},
  assigned={patient=patient, bed=bed, requested_at=tonumber(ARGV[4])}}, ARGV[2], ARGV[3])
"""
)

TRANSITION = (
    _ASSIGN_WAITING
    + """
-- ARGV: 1 bed ('' to find the patient's bed), 2 patient ('' if none), 3 target status,
--       4 allowed current statuses (comma list), 5 seen ttl, 6 channel, 7 ward
local seen = redis.call('GET', KEYS[7])
if seen then return seen end
local bed, patient, target = ARGV[1], ARGV[2], ARGV[3]
if bed == '' then
  bed = redis.call('HGET', KEYS[3], patient)
  if not bed then
    local removed = redis.call('ZREM', KEYS[6], patient)
    local outcome = 'no_bed'
    if removed == 1 then outcome = 'withdrawn' end
    return finish({outcome=outcome, ward=ARGV[7]}, ARGV[5], ARGV[6])
  end
end
local current = redis.call('HGET', KEYS[1], bed)
if not current then
  return finish({outcome='unknown_bed', ward=ARGV[7], bed=bed}, ARGV[5], ARGV[6])
end
-- A patient placed in a named bed leaves the bed they held in this ward (the EHR wins).
local held = nil
if target == 'occupied' and patient ~= '' then
  held = redis.call('HGET', KEYS[3], patient)
  if held == bed then
    return finish({outcome='already', ward=ARGV[7], bed=bed}, ARGV[5], ARGV[6])
  end
end
if not string.find(',' .. ARGV[4] .. ',', ',' .. current .. ',', 1, true) then
  return finish({outcome='refused', ward=ARGV[7], bed=bed, previous=current}, ARGV[5], ARGV[6])
end
if current == 'occupied' then
  local previous_patient = redis.call('HGET', KEYS[2], bed)
  redis.call('HDEL', KEYS[2], bed)
  if previous_patient then redis.call('HDEL', KEYS[3], previous_patient) end
end
local changes = {}
if held then
  redis.call('HSET', KEYS[1], held, 'dirty')
  redis.call('HDEL', KEYS[2], held)
  table.insert(changes, {held, 'occupied', 'dirty'})
end
table.insert(changes, {bed, current, target})
local assigned = nil
if target == 'occupied' then
  occupy(bed, patient)
elseif target == 'available' then
  redis.call('HSET', KEYS[1], bed, target)
  local next = redis.call('ZRANGE', KEYS[6], 0, 0, 'WITHSCORES')
  if #next > 0 then
    occupy(bed, next[1])
    table.insert(changes, {bed, 'available', 'occupied'})
    assigned = {patient=next[1], bed=bed, requested_at=tonumber(next[2])}
  else
    redis.call('ZADD', KEYS[4], tonumber(redis.call('HGET', KEYS[5], bed)), bed)
  end
else
  redis.call('HSET', KEYS[1], bed, target)
  redis.call('ZREM', KEYS[4], bed)
end
return finish({outcome='applied', ward=ARGV[7], bed=bed, previous=current, changes=changes,
  assigned=assigned}, ARGV[5], ARGV[6])
"""
)

ENSURE_BEDS = """
-- KEYS: 1 status, 4 available, 5 order (2, 3 unused); ARGV: bed names in ward order
for i, bed in ipairs(ARGV) do
  redis.call('HSET', KEYS[5], bed, i)
  if redis.call('HSETNX', KEYS[1], bed, 'available') == 1 then
    redis.call('ZADD', KEYS[4], i, bed)
  end
end
return #ARGV
"""
