"""What every bed script shares: the ward keys, the Lua helpers (`ward_at`, `occupy`, `hold`,
`free`, ...) and `finish`. See the package docstring for the keys and records."""

WARD_KEY_COUNT = 13
"""How many keys a ward has (`store.WARD_STRUCTURES`); a ward script's seen key comes next."""

COMMON = """
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
