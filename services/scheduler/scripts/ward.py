"""Scripts of one ward: all their keys share the ward's hash tag (see the package docstring)."""

from services.scheduler.scripts.common import COMMON

ALLOCATE = (
    COMMON
    + """
-- ARGV: 1 patient, 2 seen ttl, 3 channel, 4 requested_at (epoch seconds), 5 ward,
--       6 origin (`ward`, `emergency`, `transfer` or `manual`), 7 the id of the bed manager's
--       request ('' for an admission or transfer), kept with the wait so it can be cancelled,
--       8 queue score (requested_at minus the acuity credit, `domain.queue_score`),
--       9 the patient's profile (JSON: sex, needs, band, aggregate, since), kept while they
--       wait for or hold a bed of the ward,
--       10 '1' when the patient may only have the beds that follow (needs or bay sex policy: the
--       lowest available of them is given; none: they wait with them remembered in
--       waiting_eligible), '' for any bed, 11.. those beds
-- An admission or transfer (no request id) is the patient arriving: the bed is occupied. A bed
-- manager's request (a request id) is for a patient still to come: the bed is reserved for them
-- (`hold`) until the ADT that moves them in confirms it, or the hold expires.
local W, SEEN = ward_at(1, ARGV[5]), KEYS[14]
local seen = redis.call('GET', SEEN)
if seen then return seen end
local patient = ARGV[1]
local has = redis.call('HGET', W.patient_bed, patient)
if has then return finish({outcome='already', bed=has, ward=ARGV[5]}, SEEN, ARGV[2], ARGV[3]) end
-- A bed reserved for this patient in this ward is the one they get when they arrive (no origin:
-- the wait to that bed was measured when it was reserved); a second request keeps it.
local mine = redis.call('HGET', W.patient_reserved, patient)
if mine and ARGV[7] ~= '' then
  return finish({outcome='already', bed=mine, ward=ARGV[5]}, SEEN, ARGV[2], ARGV[3])
end
redis.call('HSET', W.profile, patient, ARGV[9])
local profile = cjson.decode(ARGV[9])
local needs = nil
if type(profile.needs) == 'table' then needs = profile.needs end
if mine then
  local r = unreserve(W, mine)
  occupy(W, mine, patient)
  return finish({outcome='applied', ward=ARGV[5], bed=mine, previous='reserved',
    changes={{mine, 'reserved', 'occupied'}}, fulfilled=r,
    assigned={patient=patient, bed=mine, requested_at=tonumber(ARGV[4]), needs=needs,
      status='occupied'}}, SEEN,
    ARGV[2], ARGV[3])
end
local restricted = ARGV[10] == '1'
local bed = nil
if restricted then
  local lowest = nil
  for i = 11, #ARGV do
    local score = redis.call('ZSCORE', W.available, ARGV[i])
    if score and (lowest == nil or tonumber(score) < lowest) then
      bed, lowest = ARGV[i], tonumber(score)
    end
  end
else
  local popped = redis.call('ZPOPMIN', W.available)
  if #popped > 0 then bed = popped[1] end
end
if not bed then
  if redis.call('ZADD', W.waiting, 'NX', ARGV[8], patient) == 1 then
    redis.call('HSET', W.origin, patient, ARGV[6])
    if ARGV[7] ~= '' then redis.call('HSET', W.waiting_request, patient, ARGV[7]) end
    if restricted then
      redis.call('HSET', W.eligible, patient, table.concat(ARGV, ',', 11, #ARGV))
    end
  end
  local reason = 'no_bed_available'
  if redis.call('ZCARD', W.available) > 0 then reason = 'no_matching_bed' end
  return finish({outcome='waiting', ward=ARGV[5], reason=reason}, SEEN, ARGV[2], ARGV[3])
end
if ARGV[7] ~= '' then
  local since = tonumber(ARGV[4])
  if type(profile.since) == 'number' then since = profile.since end
  local eligible = nil
  if restricted then eligible = table.concat(ARGV, ',', 11, #ARGV) end
  local band = text(profile, 'band')
  local r = hold(W, bed, patient, ARGV[7], tonumber(ARGV[8]), eligible, since, band, needs)
  return finish({outcome='applied', ward=ARGV[5], bed=bed, previous='available',
    changes={{bed, 'available', 'reserved'}},
    assigned={patient=patient, bed=bed, requested_at=since, origin=ARGV[6], band=band,
      needs=needs, status='reserved', reservation=r}}, SEEN,
    ARGV[2], ARGV[3])
end
occupy(W, bed, patient)
return finish({outcome='applied', ward=ARGV[5], bed=bed, previous='available',
  changes={{bed, 'available', 'occupied'}},
  assigned={patient=patient, bed=bed, requested_at=tonumber(ARGV[4]), origin=ARGV[6],
    band=text(profile, 'band'), needs=needs, status='occupied'}}, SEEN, ARGV[2], ARGV[3])
"""
)

TRANSITION = (
    COMMON
    + """
-- ARGV: 1 bed ('' to find the patient's bed), 2 patient ('' if none), 3 target status,
--       4 allowed current statuses (comma list), 5 seen ttl, 6 channel, 7 ward,
--       8 the reason code recorded when the target is 'blocked', 9 the profile (JSON) of the
--       patient placed, for target 'occupied' ('' if none)
local W, SEEN = ward_at(1, ARGV[7]), KEYS[14]
local seen = redis.call('GET', SEEN)
if seen then return seen end
local bed, patient, target = ARGV[1], ARGV[2], ARGV[3]
if bed == '' then
  bed = redis.call('HGET', W.patient_bed, patient)
  if not bed then
    local removed = unqueue(W, patient)
    local outcome = 'no_bed'
    if removed == 1 then
      outcome = 'withdrawn'
      redis.call('HDEL', W.profile, patient)
    end
    return finish({outcome=outcome, ward=ARGV[7]}, SEEN, ARGV[5], ARGV[6])
  end
end
local current = redis.call('HGET', W.status, bed)
if not current then
  return finish({outcome='unknown_bed', ward=ARGV[7], bed=bed}, SEEN, ARGV[5], ARGV[6])
end
-- A patient placed in a named bed leaves the bed they held in this ward (the EHR wins), and
-- a bed reserved for them elsewhere in this ward is released.
local held, mine = nil, nil
if target == 'occupied' and patient ~= '' then
  held = redis.call('HGET', W.patient_bed, patient)
  if held == bed then
    return finish({outcome='already', ward=ARGV[7], bed=bed}, SEEN, ARGV[5], ARGV[6])
  end
  mine = redis.call('HGET', W.patient_reserved, patient)
  if mine == bed then mine = nil end
end
if not string.find(',' .. ARGV[4] .. ',', ',' .. current .. ',', 1, true) then
  return finish({outcome='refused', ward=ARGV[7], bed=bed, previous=current}, SEEN, ARGV[5],
    ARGV[6])
end
if current == 'occupied' then
  local previous_patient = redis.call('HGET', W.occupant, bed)
  redis.call('HDEL', W.occupant, bed)
  if previous_patient then
    redis.call('HDEL', W.patient_bed, previous_patient)
    redis.call('HDEL', W.profile, previous_patient)
  end
end
-- A reserved bed changing status: its holder moving in fulfils the request; anything else
-- takes the bed from the request (displaced: queued again; a critical-care request by the
-- scheduler, a ward reservation's patient here, in the ward's queue with their first score).
local fulfilled, displaced, released = nil, nil, nil
if current == 'reserved' then
  local r = unreserve(W, bed)
  if r and target == 'occupied' and r.patient == patient then fulfilled = r
  elseif r then
    displaced = r
    if r.kind == 'ward' then requeue(W, r) end
  end
end
-- A blocked bed keeps its reason code while blocked, and only then.
local blocked_reason = nil
if current == 'blocked' then redis.call('HDEL', W.blocked_reason, bed) end
if target == 'blocked' then
  blocked_reason = ARGV[8]
  redis.call('HSET', W.blocked_reason, bed, blocked_reason)
end
local changes = {}
if held then
  redis.call('HSET', W.status, held, 'dirty')
  redis.call('HDEL', W.occupant, held)
  table.insert(changes, {held, 'occupied', 'dirty'})
end
table.insert(changes, {bed, current, target})
local assigned = nil
if target == 'occupied' then
  occupy(W, bed, patient)
  if ARGV[9] ~= '' then redis.call('HSET', W.profile, patient, ARGV[9]) end
elseif target == 'available' then
  assigned = free(W, bed)
  if assigned then table.insert(changes, {bed, 'available', assigned.status}) end
else
  redis.call('HSET', W.status, bed, target)
  redis.call('ZREM', W.available, bed)
end
if mine then
  released = unreserve(W, mine)
  fulfilled = released
  table.insert(changes, {mine, 'reserved', 'available'})
  assigned = free(W, mine)
  if assigned then table.insert(changes, {mine, 'available', assigned.status}) end
end
-- A displaced ward reservation's patient still waiting: a free bed they fit serves the queue.
local served, requeued = {}, nil
local requeued_patient = displaced and displaced.kind == 'ward' and displaced.patient
if requeued_patient and redis.call('ZSCORE', W.waiting, requeued_patient) then
  local placed = serve_patient(W, requeued_patient)
  if placed then
    table.insert(changes, {placed.bed, 'available', placed.status})
    table.insert(served, placed)
  end
  if redis.call('ZSCORE', W.waiting, requeued_patient) then
    requeued = 'no_bed_available'
    if redis.call('ZCARD', W.available) > 0 then requeued = 'no_matching_bed' end
  end
end
return finish({outcome='applied', ward=ARGV[7], bed=bed, previous=current, changes=changes,
  assigned=assigned, fulfilled=fulfilled, displaced=displaced, released=released,
  blocked_reason=blocked_reason, served=served, requeued=requeued}, SEEN, ARGV[5], ARGV[6])
"""
)

CANCEL_WAIT = (
    COMMON
    + """
-- A bed manager cancels their request: the patient it queued leaves the ward's waiting queue,
-- or the bed reserved for it is released (to the queue first). ARGV: 1 request id, 2 seen ttl,
-- 3 channel, 4 ward. Outcome `withdrawn` (with the patient; `cancelled`, the reservation
-- released, if it held a bed) or `unknown` (no patient of this ward waits or holds a bed under
-- that request: never queued here, moved in, or already withdrawn or expired).
local W, SEEN = ward_at(1, ARGV[4]), KEYS[14]
local seen = redis.call('GET', SEEN)
if seen then return seen end
for _, raw in ipairs(redis.call('HVALS', W.reservation)) do
  local r = cjson.decode(raw)
  if r.kind == 'ward' and r.request == ARGV[1] then
    local changes, assigned = {}, {}
    let_go(W, r, changes, assigned)
    return finish({outcome='withdrawn', ward=ARGV[4], patient=r.patient, cancelled=r,
      changes=changes, served=assigned}, SEEN, ARGV[2], ARGV[3])
  end
end
local pairs_ = redis.call('HGETALL', W.waiting_request)
for i = 1, #pairs_, 2 do
  if pairs_[i + 1] == ARGV[1] then
    unqueue(W, pairs_[i])
    redis.call('HDEL', W.profile, pairs_[i])
    return finish({outcome='withdrawn', ward=ARGV[4], patient=pairs_[i]}, SEEN, ARGV[2], ARGV[3])
  end
end
return finish({outcome='unknown', ward=ARGV[4]}, SEEN, ARGV[2], ARGV[3])
"""
)

RESCORE = (
    COMMON
    + """
-- A newer assessment of a patient of this ward: their profile takes it, and if they wait for a
-- bed of the ward, their place in the queue follows their new acuity (wait start minus the new
-- credit). ARGV: 1 patient, 2 profile (JSON), 3 queue score, 4 seen ttl, 5 channel, 6 ward.
-- Outcome `rescored` (waiting), `updated` (in a bed of the ward) or `absent` (neither: nothing).
local W, SEEN = ward_at(1, ARGV[6]), KEYS[14]
local seen = redis.call('GET', SEEN)
if seen then return seen end
local patient, outcome = ARGV[1], 'absent'
if redis.call('ZSCORE', W.waiting, patient) then
  redis.call('ZADD', W.waiting, 'XX', ARGV[3], patient)
  redis.call('HSET', W.profile, patient, ARGV[2])
  outcome = 'rescored'
elseif redis.call('HEXISTS', W.patient_bed, patient) == 1 then
  redis.call('HSET', W.profile, patient, ARGV[2])
  outcome = 'updated'
end
return finish({outcome=outcome, ward=ARGV[6]}, SEEN, ARGV[4], ARGV[5])
"""
)

# A waiting patient's eligible beds, re-evaluated (a layout change). KEYS: 1 waiting zset,
# 2 waiting_eligible hash; ARGV: 1 patient, 2 '1' if restricted ('' for any bed), 3 the beds,
# comma-joined. Only while the patient still waits.
SET_ELIGIBLE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if ARGV[2] == '1' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return 1
"""

ENSURE_BEDS = (
    COMMON
    + """
-- Create the ward's missing beds and refresh every bed's order. KEYS: the ward keys (the seen key
-- unused: idempotent by state); ARGV: 1 ward, 2 channel, 3.. bed names in layout order. A new bed
-- is available: it goes first to the first patient waiting for the ward whom it fits (`free`).
-- Returns {assigned = [...]}; publishes the placements.
local W = ward_at(1, ARGV[1])
local assigned, changes = {}, {}
for i = 3, #ARGV do
  local bed = ARGV[i]
  redis.call('HSET', W.order, bed, i - 2)
  if redis.call('HSETNX', W.status, bed, 'available') == 1 then
    local placed = free(W, bed)
    if placed then
      table.insert(assigned, placed)
      table.insert(changes, {bed, 'available', placed.status})
    end
  end
end
local result = {outcome='ensured', ward=ARGV[1], assigned=assigned, changes=changes}
local encoded = cjson.encode(result)
if #assigned > 0 then redis.call('PUBLISH', ARGV[2], encoded) end
return encoded
"""
)

REMOVE_BEDS = (
    COMMON
    + """
-- Beds leave a ward whose layout changed (WardLayoutSet). KEYS: the 13 ward keys (no seen key:
-- idempotent by state, every replica runs it); ARGV: 1 channel, 2 ward, 3.. the beds leaving.
-- A bed goes only if it is available or blocked: out of status, available, order and
-- blocked_reason. Any other bed stays, returned in `kept` with its status; a bed already gone is
-- in neither list. Publishes the result when a bed went.
local W = ward_at(1, ARGV[2])
local removed, kept = {}, {}
for i = 3, #ARGV do
  local bed = ARGV[i]
  local status = redis.call('HGET', W.status, bed)
  if status == 'available' or status == 'blocked' then
    redis.call('HDEL', W.status, bed)
    redis.call('ZREM', W.available, bed)
    redis.call('HDEL', W.order, bed)
    redis.call('HDEL', W.blocked_reason, bed)
    table.insert(removed, bed)
  elseif status then
    table.insert(kept, {bed, status})
  end
end
local encoded = cjson.encode({outcome='beds_removed', ward=ARGV[2], removed=removed, kept=kept})
if #removed > 0 then redis.call('PUBLISH', ARGV[1], encoded) end
return encoded
"""
)

EXPIRE_WARD = (
    COMMON
    + """
-- Release the ward's reservations for bed managers' requests held longer than ARGV[4] seconds
-- (by Redis's clock): each bed goes to the ward's queue first (`free`), else back to available.
-- ARGV: 1 seen ttl, 2 channel, 3 ward, 4 hold seconds. KEYS: the ward keys, then a throwaway
-- seen key (a tick has no cause event): the release is idempotent by state. Critical-care
-- reservations are the level's (EXPIRE).
local W, SEEN = ward_at(1, ARGV[3]), KEYS[14]
local result = {outcome='expired', ward=ARGV[3], changes={}, served={}, expired={}}
local now = tonumber(redis.call('TIME')[1])
local hold_seconds = tonumber(ARGV[4])
for _, raw in ipairs(redis.call('HVALS', W.reservation)) do
  local r = cjson.decode(raw)
  if r.kind == 'ward' and r.reserved_at + hold_seconds <= now then
    let_go(W, r, result.changes, result.served)
    table.insert(result.expired, r)
  end
end
if #result.expired == 0 then return cjson.encode(result) end
return finish(result, SEEN, ARGV[1], ARGV[2])
"""
)
