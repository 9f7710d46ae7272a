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

from services.scheduler.scripts.common import WARD_KEY_COUNT
from services.scheduler.scripts.level import EXPIRE, RESERVE, WITHDRAW
from services.scheduler.scripts.reads import COUNTS, RESTORE, SNAPSHOT
from services.scheduler.scripts.ward import (
    ALLOCATE,
    CANCEL_WAIT,
    ENSURE_BEDS,
    EXPIRE_WARD,
    REMOVE_BEDS,
    RESCORE,
    SET_ELIGIBLE,
    TRANSITION,
)

__all__ = [
    "ALLOCATE",
    "CANCEL_WAIT",
    "COUNTS",
    "ENSURE_BEDS",
    "EXPIRE",
    "EXPIRE_WARD",
    "REMOVE_BEDS",
    "RESCORE",
    "RESERVE",
    "RESTORE",
    "SET_ELIGIBLE",
    "SNAPSHOT",
    "TRANSITION",
    "WARD_KEY_COUNT",
    "WITHDRAW",
]
