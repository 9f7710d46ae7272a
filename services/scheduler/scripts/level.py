"""Scripts of one critical-care level: its queue and every HDU/ICU ward of that level, one hash
tag (see the package docstring)."""

from services.scheduler.scripts.common import COMMON

_LEVEL = (
    COMMON
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
