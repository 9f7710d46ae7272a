"""Lua scripts that change bed state atomically.

Ward scripts (`ALLOCATE`, `TRANSITION`, `ENSURE_BEDS`) touch one ward; all their keys share the
ward's hash tag. KEYS: 1 status hash (bed -> status), 2 occupant hash (bed -> patient),
3 patient_bed hash (patient -> bed), 4 available zset (bed, by ward order), 5 order hash
(bed -> ordinal), 6 waiting zset (patient, by request time), 7 reservation hash (bed -> JSON of
the critical-care request holding it), 8 patient_reserved hash (patient -> reserved bed),
9 waiting_origin hash (waiting patient -> where they come from: `ward`, `emergency`, `transfer`,
`manual`; for the bed wait metric), 10 blocked_reason hash (blocked bed -> reason code: `infection`,
`maintenance`, `staffing`, `other` or `unspecified`; set when a bed becomes blocked, removed when
it leaves blocked), 11 waiting_request hash (waiting patient -> the id of the bed manager's request
that queued them; cleared with the wait), 12 waiting_eligible hash (waiting patient -> the beds
they may be given, comma-joined, when their allocation was restricted by needs or bay sex policy;
no entry: any bed of the ward; cleared with the wait), 13 profile hash (patient waiting for or in a
bed of the ward -> JSON {sex, needs, band, aggregate, since}: what matching and priority know of
them, `since` the start of their wait; removed when they leave the ward or their wait),
14 seen key of the cause event.
`CANCEL_WAIT` and `RESCORE` take the same keys. The waiting zset is ordered by score: wait start
minus the acuity credit of the patient's latest NEWS2 (`domain.queue_score`; no assessment: no
credit, first come first served).
`REMOVE_BEDS` (beds leaving a ward's layout) takes the same keys but the seen key.

Level scripts (`RESERVE`, `WITHDRAW`) serve the critical-care queue of one level of care (hdu or
icu). KEYS: 1 queue zset (request id, by the score the scheduler passes: request time minus the
request's acuity credit, `domain.queue_score`), 2 requests hash (request id -> JSON),
3 patient_request hash (patient -> request id), 4 seen key, then the 13 ward keys above (not the
seen key) for each ward of that level, in the order of the ward ids in ARGV (`EXPIRE` too). An
HDU/ICU ward's keys carry its level's hash tag (`keys.py`), so a level script's keys are all in
one slot, like a ward script's: every script runs unchanged on Redis Cluster
(docs/architecture.md §11). The scripts build no key names: they use only KEYS.

A request record (JSON) is {request, patient, level, requested_at (epoch seconds, a string: the
real request time, for wait times), band and aggregate (NEWS2, absent on records from before
priorities), from_ward, state ('waiting' or 'reserved'), ward, bed, match (absent: any bed of
the level; else `beds`, ward -> the beds the patient fits by needs, bay sex policy and specialty,
`prefer`, wards at the patient's site, and `needs`)}; the reserved bed's
`reservation` entry is the same record. Band and aggregate travel with the record so that a
request queued again (its reserved bed taken) keeps its priority.

Each script stores its result under the seen key: a redelivered event gets the same result back
and changes nothing. Every applied change is published on the changes channel.
"""

WARD_KEY_COUNT = 13
"""How many keys a ward has (`store.WARD_STRUCTURES`); a ward script's seen key comes next."""

_COMMON = """
local function ward_at(i, id)
  return {id=id, status=KEYS[i], occupant=KEYS[i+1], patient_bed=KEYS[i+2], available=KEYS[i+3],
    order=KEYS[i+4], waiting=KEYS[i+5], reservation=KEYS[i+6], patient_reserved=KEYS[i+7],
    origin=KEYS[i+8], blocked_reason=KEYS[i+9], waiting_request=KEYS[i+10],
    eligible=KEYS[i+11], profile=KEYS[i+12]}
end
-- A string field of a decoded profile or record (cjson gives JSON null as a userdata).
local function text(t, field)
  if t and type(t[field]) == 'string' then return t[field] end
  return nil
end
-- The patient leaves the ward's waiting queue (and its side hashes).
local function unqueue(w, patient)
  local removed = redis.call('ZREM', w.waiting, patient)
  redis.call('HDEL', w.origin, patient)
  redis.call('HDEL', w.waiting_request, patient)
  redis.call('HDEL', w.eligible, patient)
  return removed
end
local function occupy(w, bed, patient)
  redis.call('HSET', w.status, bed, 'occupied')
  redis.call('ZREM', w.available, bed)
  redis.call('HSET', w.occupant, bed, patient)
  redis.call('HSET', w.patient_bed, patient, bed)
  unqueue(w, patient)
end
-- Drop a bed's reservation entries; returns the request record that held it, or nil.
local function unreserve(w, bed)
  local raw = redis.call('HGET', w.reservation, bed)
  if not raw then return nil end
  local r = cjson.decode(raw)
  redis.call('HDEL', w.reservation, bed)
  if redis.call('HGET', w.patient_reserved, r.patient) == bed then
    redis.call('HDEL', w.patient_reserved, r.patient)
  end
  return r
end
-- Hold the bed for a bed manager's request until the ADT that moves the patient in confirms
-- it (ALLOCATE's or TRANSITION's placement of that patient) or the hold expires (EXPIRE_WARD):
-- a ward reservation record (kind 'ward') in the ward's reservation hash. It keeps what putting
-- the patient back in the queue needs: their queue score and eligible beds.
local function hold(w, bed, patient, request, score, eligible, since, band, needs)
  redis.call('HSET', w.status, bed, 'reserved')
  redis.call('ZREM', w.available, bed)
  local r = {kind='ward', request=request, patient=patient, ward=w.id, bed=bed,
    state='reserved', requested_at=since, reserved_at=tonumber(redis.call('TIME')[1]),
    band=band, score=score, eligible=eligible, needs=needs, from_ward=''}
  local encoded = cjson.encode(r)
  redis.call('HSET', w.reservation, bed, encoded)
  redis.call('HSET', w.patient_reserved, patient, bed)
  unqueue(w, patient)
  return r
end
-- A ward reservation's patient waits for the ward again, with their first queue score.
local function requeue(w, r)
  redis.call('ZADD', w.waiting, 'NX', r.score, r.patient)
  redis.call('HSET', w.origin, r.patient, 'manual')
  redis.call('HSET', w.waiting_request, r.patient, r.request)
  if type(r.eligible) == 'string' then redis.call('HSET', w.eligible, r.patient, r.eligible) end
end
-- May the waiting patient be given this bed? (No waiting_eligible entry: any bed.)
local function fits(w, patient, bed)
  local eligible = redis.call('HGET', w.eligible, patient)
  if not eligible then return true end
  return string.find(',' .. eligible .. ',', ',' .. bed .. ',', 1, true) ~= nil
end
-- The bed becomes available: the first patient in the ward's queue (lowest score: wait start
-- minus acuity credit) for whom it is eligible gets it (returned, with the real wait start and
-- the band and needs of their profile, and `status`: 'occupied', or 'reserved' with the
-- `reservation` record when a bed manager's request queued them), otherwise it joins the free
-- beds.
local function free(w, bed)
  redis.call('HSET', w.status, bed, 'available')
  local chosen, at = nil, nil
  if redis.call('HLEN', w.eligible) == 0 then
    local next = redis.call('ZRANGE', w.waiting, 0, 0, 'WITHSCORES')
    if #next > 0 then chosen, at = next[1], next[2] end
  else
    local queue = redis.call('ZRANGE', w.waiting, 0, -1, 'WITHSCORES')
    for i = 1, #queue, 2 do
      if fits(w, queue[i], bed) then
        chosen, at = queue[i], queue[i + 1]
        break
      end
    end
  end
  if chosen then
    local origin = redis.call('HGET', w.origin, chosen) or nil
    local since, band, needs = tonumber(at), nil, nil
    local raw = redis.call('HGET', w.profile, chosen)
    if raw then
      local p = cjson.decode(raw)
      if type(p.since) == 'number' then since = p.since end
      band = text(p, 'band')
      if type(p.needs) == 'table' then needs = p.needs end
    end
    local request = redis.call('HGET', w.waiting_request, chosen)
    if request then
      local eligible = redis.call('HGET', w.eligible, chosen) or nil
      local r = hold(w, bed, chosen, request, tonumber(at), eligible, since, band, needs)
      return {patient=chosen, bed=bed, requested_at=since, origin=origin, band=band, needs=needs,
        status='reserved', reservation=r}
    end
    occupy(w, bed, chosen)
    return {patient=chosen, bed=bed, requested_at=since, origin=origin, band=band, needs=needs,
      status='occupied'}
  end
  redis.call('ZADD', w.available, tonumber(redis.call('HGET', w.order, bed)), bed)
  return nil
end
-- A patient just queued again: the lowest free bed they fit goes to the queue (`free`: to them,
-- or to someone ahead of them whom it fits). Returns the assignment, or nil.
local function serve_patient(w, patient)
  for _, bed in ipairs(redis.call('ZRANGE', w.available, 0, -1)) do
    if fits(w, patient, bed) then
      redis.call('ZREM', w.available, bed)
      return free(w, bed)
    end
  end
  return nil
end
-- A ward reservation released (cancelled or expired): the patient is forgotten by the ward, the
-- bed is freed (to the queue first). Appends to `changes` and `assigned`.
local function let_go(w, r, changes, assigned)
  unreserve(w, r.bed)
  redis.call('HDEL', w.profile, r.patient)
  table.insert(changes, {r.bed, 'reserved', 'available'})
  local placed = free(w, r.bed)
  if placed then
    table.insert(changes, {r.bed, 'available', placed.status})
    table.insert(assigned, placed)
  end
end
local function finish(result, seen, ttl, channel)
  local encoded = cjson.encode(result)
  redis.call('SET', seen, encoded, 'EX', ttl)
  local changed = result['changes'] and #result['changes'] > 0
  if result['outcome'] == 'applied' or changed then redis.call('PUBLISH', channel, encoded) end
  return encoded
end
"""

ALLOCATE = (
    _COMMON
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
    _COMMON
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
    _COMMON
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
    _COMMON
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
    _COMMON
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
    _COMMON
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
    _COMMON
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

_LEVEL = (
    _COMMON
    + """
local QUEUE, REQUESTS, PATIENT_REQUEST, SEEN = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local function wards_from(first)
  local wards = {}
  for j = first, #ARGV do
    table.insert(wards, {id=ARGV[j], w=ward_at(5 + (j - first) * 13, ARGV[j])})  -- WARD_KEY_COUNT
  end
  return wards
end
local function find(wards, id)
  for _, ward in ipairs(wards) do if ward.id == id then return ward end end
  return nil
end
local function record(request)
  local raw = redis.call('HGET', REQUESTS, request)
  if raw then return cjson.decode(raw) end
  return nil
end
-- Does the record still describe the state (queued, or holding its reserved bed)?
local function active(wards, r)
  if r.state == 'waiting' then return redis.call('ZSCORE', QUEUE, r.request) ~= false end
  local ward = find(wards, r.ward)
  if not ward then return false end
  local raw = redis.call('HGET', ward.w.reservation, r.bed)
  return raw ~= false and cjson.decode(raw).request == r.request
end
local function forget(r)
  redis.call('HDEL', REQUESTS, r.request)
  redis.call('ZREM', QUEUE, r.request)
  if redis.call('HGET', PATIENT_REQUEST, r.patient) == r.request then
    redis.call('HDEL', PATIENT_REQUEST, r.patient)
  end
end
-- A reserved bed goes back into use: to the oldest patient waiting for its ward whom it fits,
-- else it joins the free beds (and `serve` may give it to the level's queue).
local function release(wards, r, result)
  local ward = find(wards, r.ward)
  unreserve(ward.w, r.bed)
  table.insert(result.changes, {ward.id, r.bed, 'reserved', 'available'})
  local assigned = free(ward.w, r.bed)
  if assigned then
    table.insert(result.changes, {ward.id, r.bed, 'available', assigned.status})
    assigned.ward = ward.id
    table.insert(result.assigned, assigned)
  end
end
-- The queue in serving order: the lowest score first; among equal scores the higher acuity credit
-- (it has the later request time, as score = time - credit), then the lowest request id.
local function ordered()
  local flat = redis.call('ZRANGE', QUEUE, 0, -1, 'WITHSCORES')
  local entries = {}
  for i = 1, #flat, 2 do
    local r = record(flat[i])
    local at = -math.huge
    if r then at = tonumber(r.requested_at) end
    table.insert(entries, {id=flat[i], score=tonumber(flat[i + 1]), at=at})
  end
  table.sort(entries, function(a, b)
    if a.score ~= b.score then return a.score < b.score end
    if a.at ~= b.at then return a.at > b.at end
    return a.id < b.id
  end)
  return entries
end
-- The ward and bed a request would get now, or nil. A request without `match` takes the lowest
-- free bed of the ward with the most free beds (ties: the first ward id). With `match` (needs,
-- bay sex policy, specialty): only its eligible beds (`match.beds`: ward -> beds); a preferred
-- ward (`match.prefer`: same site) first, then the most eligible free beds, then the ward id; the
-- lowest of its eligible free beds.
local function bed_for(wards, r)
  local match = r.match
  if type(match) ~= 'table' then
    local best, most = nil, 0
    for _, ward in ipairs(wards) do
      local n = redis.call('ZCARD', ward.w.available)
      if n > most then best, most = ward, n end
    end
    if not best then return nil, nil end
    return best, redis.call('ZRANGE', best.w.available, 0, 0)[1]
  end
  local best, best_bed, best_rank, most = nil, nil, nil, 0
  for _, ward in ipairs(wards) do
    local beds = type(match.beds) == 'table' and match.beds[ward.id]
    if type(beds) == 'table' then
      local lowest, lowest_score, n = nil, nil, 0
      for _, bed in ipairs(beds) do
        local score = redis.call('ZSCORE', ward.w.available, bed)
        if score then
          n = n + 1
          if lowest_score == nil or tonumber(score) < lowest_score then
            lowest, lowest_score = bed, tonumber(score)
          end
        end
      end
      local rank = 1
      if type(match.prefer) == 'table' and match.prefer[ward.id] then rank = 0 end
      if n > 0 and (best == nil or rank < best_rank or (rank == best_rank and n > most)) then
        best, best_bed, best_rank, most = ward, lowest, rank, n
      end
    end
  end
  return best, best_bed
end
local function free_beds(wards)
  local n = 0
  for _, ward in ipairs(wards) do n = n + redis.call('ZCARD', ward.w.available) end
  return n
end
-- Serve the queue in order: each request the bed it fits (`bed_for`); one that fits no free bed
-- keeps its place while those behind it may be served.
local function serve(wards, result)
  local left = free_beds(wards)
  if left == 0 then return end
  for _, entry in ipairs(ordered()) do
    if left == 0 then return end
    local r = record(entry.id)
    if not r then
      redis.call('ZREM', QUEUE, entry.id)
    else
      local ward, bed = bed_for(wards, r)
      if ward then
        redis.call('ZREM', QUEUE, entry.id)
        redis.call('ZREM', ward.w.available, bed)
        redis.call('HSET', ward.w.status, bed, 'reserved')
        r.state, r.ward, r.bed = 'reserved', ward.id, bed
        r.reserved_at = tonumber(redis.call('TIME')[1])
        local encoded = cjson.encode(r)
        redis.call('HSET', REQUESTS, r.request, encoded)
        redis.call('HSET', ward.w.reservation, bed, encoded)
        redis.call('HSET', ward.w.patient_reserved, r.patient, bed)
        table.insert(result.changes, {ward.id, bed, 'available', 'reserved'})
        table.insert(result.reserved, r)
        left = left - 1
      end
    end
  end
end
"""
)

RESERVE = (
    _LEVEL
    + """
-- ARGV: 1 seen ttl, 2 channel, 3 level, 4 request id ('' to only serve the queue), 5 patient,
--       6 requested_at (epoch seconds), 7 requesting ward, 8 '1' to queue again a request whose
--       bed was taken (only if it still exists), 9 request to close ('' if none: its patient
--       was placed), 10 queue score (request time minus acuity credit), 11 NEWS2 band ('' if
--       unknown), 12 NEWS2 aggregate ('' if unknown), 13 the request's match (JSON: `beds`,
--       ward -> eligible beds, `prefer`, ward -> true, `needs`; '' for any bed of the level),
--       14.. ward ids of the level, sorted
local seen = redis.call('GET', SEEN)
if seen then return seen end
local wards = wards_from(14)
local match = nil
if ARGV[13] ~= '' then match = cjson.decode(ARGV[13]) end
local result = {outcome='served', level=ARGV[3], changes={}, reserved={}}
if ARGV[9] ~= '' then
  local r = record(ARGV[9])
  if r and not active(wards, r) then forget(r) end
end
local request, patient = ARGV[4], ARGV[5]
local band, aggregate = nil, tonumber(ARGV[12])
if ARGV[11] ~= '' then band = ARGV[11] end
if request ~= '' then
  local existing_id = redis.call('HGET', PATIENT_REQUEST, patient)
  local existing = existing_id and record(existing_id)
  if existing and active(wards, existing) then
    result.outcome = 'already'
    if existing_id ~= request then
      -- One request per patient and level: a newer request id takes over the older one's place.
      result.replaced = existing_id
      existing.request = request
      existing.band, existing.aggregate = band, aggregate  -- the newest assessment's acuity
      existing.match = match
      local encoded = cjson.encode(existing)
      redis.call('HDEL', REQUESTS, existing_id)
      redis.call('HSET', REQUESTS, request, encoded)
      redis.call('HSET', PATIENT_REQUEST, patient, request)
      if existing.state == 'waiting' then
        -- The first request's time, the newest acuity credit (this request's time - its score).
        local credit = tonumber(ARGV[6]) - tonumber(ARGV[10])
        redis.call('ZADD', QUEUE, tonumber(existing.requested_at) - credit, request)
        redis.call('ZREM', QUEUE, existing_id)
      else
        redis.call('HSET', find(wards, existing.ward).w.reservation, existing.bed, encoded)
      end
    end
  elseif ARGV[8] == '1' and not record(request) then
    result.outcome = 'unknown'  -- withdrawn meanwhile: nothing to queue again
  else
    if existing then forget(existing) end
    local r = {request=request, patient=patient, level=ARGV[3], requested_at=ARGV[6],
      from_ward=ARGV[7], state='waiting', band=band, aggregate=aggregate, match=match}
    redis.call('HSET', REQUESTS, request, cjson.encode(r))
    redis.call('HSET', PATIENT_REQUEST, patient, request)
    redis.call('ZADD', QUEUE, ARGV[10], request)
    result.outcome = 'waiting'
  end
end
serve(wards, result)
if request ~= '' and result.outcome ~= 'unknown' then
  result.request = record(request)
  if result.outcome == 'waiting' and result.request.state == 'reserved' then
    result.outcome = 'reserved'
  end
end
-- Why a request still waits: no free bed at the level, or free beds none of which it fits.
result.reason = 'no_bed_available'
if free_beds(wards) > 0 then result.reason = 'no_matching_bed' end
return finish(result, SEEN, ARGV[1], ARGV[2])
"""
)

WITHDRAW = (
    _LEVEL
    + """
-- ARGV: 1 seen ttl, 2 channel, 3 level, 4 request id, 5.. ward ids of the level, sorted
local seen = redis.call('GET', SEEN)
if seen then return seen end
local wards = wards_from(5)
local result = {outcome='unknown', level=ARGV[3], changes={}, reserved={}, assigned={}}
local r = record(ARGV[4])
if r then
  local was_active = active(wards, r)
  forget(r)
  result.outcome, result.request = 'closed', r
  if was_active and r.state == 'waiting' then
    result.outcome = 'withdrawn'
  elseif was_active then
    result.outcome = 'withdrawn'
    release(wards, r, result)
    serve(wards, result)
  end
end
return finish(result, SEEN, ARGV[1], ARGV[2])
"""
)

EXPIRE = (
    _LEVEL
    + """
-- Release every reservation of the level held longer than ARGV[4] seconds (by Redis's clock),
-- then serve the queue with the beds freed. ARGV: 1 seen ttl, 2 channel, 3 level, 4 hold
-- seconds, 5.. ward ids of the level, sorted. KEYS[4] is a throwaway seen key (a tick has no
-- cause event): the release is idempotent by state.
local wards = wards_from(5)
local result = {outcome='expired', level=ARGV[3], changes={}, reserved={}, assigned={},
  expired={}}
local now = tonumber(redis.call('TIME')[1])
local hold = tonumber(ARGV[4])
for _, raw in ipairs(redis.call('HVALS', REQUESTS)) do
  local r = cjson.decode(raw)
  if r.state == 'reserved' and r.reserved_at and r.reserved_at + hold <= now
      and active(wards, r) then
    forget(r)
    release(wards, r, result)
    table.insert(result.expired, r)
  end
end
if #result.expired == 0 then return cjson.encode(result) end
serve(wards, result)
return finish(result, SEEN, ARGV[1], ARGV[2])
"""
)

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
