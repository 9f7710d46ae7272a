"""What the HTTP API shows: reads of the live bed state in Redis, each stamped with Redis's clock.

A view reads its keys in one MULTI/EXEC per hash tag (`keys.py`: a general ward, or a level of
care with its HDU/ICU wards), each with Redis's `TIME`, so it runs unchanged on Redis Cluster: a
group's data was true at its instant. `as_of` is the earliest of those instants: every part of the
answer was true at `as_of` or later. The store writes these keys; these functions only read.
Patient ids in the answers are pseudonyms (§13); nothing here logs them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import methodcaller
from typing import Any

from schemas.vocabulary import BedStatus
from services.common.hospital import HospitalLayout, Ward
from services.common.redis_client import RedisClient
from services.scheduler.domain import CRITICAL_CARE_LEVELS, count_by_status
from services.scheduler.keys import BedKeys, hash_tag
from services.scheduler.policy import Reservations

SOURCE = "redis-live-state"
"""The `source` of every answer: Redis's live bed state, not a Kafka replay."""

Read = tuple[str, Callable[[Any], Any]]
"""A key, and the call that queues its read on a pipeline."""

# TIME through a script on one of the group's keys: a cluster pipeline routes a transaction by
# its keys' slot and refuses a keyless command such as TIME.
_TIME = "return redis.call('TIME')"


def _read(command: str, key: str, *args: Any, **options: Any) -> Read:
    return key, methodcaller(command, key, *args, **options)


async def _read_by_tag(redis: RedisClient, reads: Sequence[Read]) -> tuple[list[Any], float]:
    """Run the reads in one MULTI/EXEC per hash tag, the transactions concurrently, each with
    Redis's TIME. Returns the replies in the order of `reads` and the earliest instant."""
    groups: dict[str, list[int]] = {}
    for index, (key, _) in enumerate(reads):
        groups.setdefault(hash_tag(key), []).append(index)

    async def transaction(indexes: list[int]) -> tuple[list[Any], float]:
        async with redis.pipeline(transaction=True) as pipe:
            for index in indexes:
                reads[index][1](pipe)
            pipe.eval(_TIME, 1, reads[indexes[0]][0])
            replies = await pipe.execute()
        return replies[:-1], _instant(replies[-1])

    answers = await asyncio.gather(*(transaction(indexes) for indexes in groups.values()))
    replies: list[Any] = [None] * len(reads)
    for indexes, (group_replies, _) in zip(groups.values(), answers, strict=True):
        for index, reply in zip(indexes, group_replies, strict=True):
            replies[index] = reply
    return replies, min(instant for _, instant in answers)


def _instant(time_reply: Any) -> float:
    seconds, micros = (int(part) for part in time_reply)
    return seconds + micros / 1_000_000


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _stamp(now: float) -> dict[str, str]:
    return {"as_of": iso(now), "source": SOURCE}


async def wards(redis: RedisClient, keys: BedKeys, layout: HospitalLayout) -> dict[str, Any]:
    """Beds by status and patients waiting, per ward of the layout."""
    reads: list[Read] = []
    for ward in layout.wards:
        reads.append(_read("hvals", keys.ward(ward.id, "status")))
        reads.append(_read("zcard", keys.ward(ward.id, "waiting")))
    replies, now = await _read_by_tag(redis, reads)
    result = []
    for index, ward in enumerate(layout.wards):
        statuses = [BedStatus(value) for value in replies[2 * index]]
        result.append(
            {
                "ward": ward.id,
                "name": ward.name,
                "level_of_care": ward.level_of_care.value,
                "specialty": ward.specialty,
                "site": ward.site,
                "total_beds": len(statuses),
                "beds_by_status": {s.value: n for s, n in count_by_status(statuses).items()},
                "waiting": int(replies[2 * index + 1]),
            }
        )
    return {**_stamp(now), "layout": layout.version, "wards": result}


async def ward_beds(redis: RedisClient, keys: BedKeys, ward: Ward) -> dict[str, Any]:
    """Every bed of one ward, in layout order, with its status, for a blocked bed the recorded
    reason code (null otherwise), its bay and the bay's sex policy (null in a ward without bays)
    and its capabilities (from the layout). One tag: one transaction."""
    reads = [
        _read("hgetall", keys.ward(ward.id, "status")),
        _read("hgetall", keys.ward(ward.id, "blocked_reason")),
    ]
    (statuses, reasons), now = await _read_by_tag(redis, reads)
    beds = []
    for bed in ward.beds:
        if bed not in statuses:
            continue
        bay = ward.bay_of(bed)
        beds.append(
            {
                "bed": bed,
                "status": statuses[bed],
                "blocked_reason": reasons.get(bed),
                "bay": bay.id if bay else None,
                "sex_policy": bay.sex if bay else None,
                "capabilities": list(ward.capabilities_of(bed)),
            }
        )
    return {**_stamp(now), "ward": ward.id, "beds": beds}


async def patient_ward(
    redis: RedisClient, keys: BedKeys, layout: HospitalLayout, patient_id: str
) -> str | None:
    """The ward where the live state has the patient in a bed (the first in layout order)."""
    # HGET, not HEXISTS: redis-py 8.1's cluster transaction passes `keys=` to HEXISTS's reply
    # callback (`bool`), which fails; HGET has no callback.
    reads = [_read("hget", keys.ward(w.id, "patient_bed"), patient_id) for w in layout.wards]
    beds, _ = await _read_by_tag(redis, reads)
    return next((w.id for w, bed in zip(layout.wards, beds, strict=True) if bed is not None), None)


async def open_requests(
    redis: RedisClient, keys: BedKeys, layout: HospitalLayout, holds: Reservations | None = None
) -> dict[str, Any]:
    """Every open bed request, oldest first: patients waiting for a ward, or holding a bed of it
    reserved for a bed manager's request (`ward_admission`), and critical-care requests per level
    (`critical_care`: queued, or holding a reserved bed). A reserved request (`state`
    `reserved`) says when it was reserved (`reserved_at`) and, given the policy's `holds`, when
    it expires unless the patient arrives (`expires_at`); both are None for a waiting one.
    `waiting_seconds` is measured to `as_of`, the earliest instant of the reads, from the real
    request time (a ward wait's queue score also holds its acuity credit). `band` is the NEWS2
    band the request is prioritised by (None: no assessment known) and `wait_origin` the
    `origin` label its wait will have in `wardflow_bed_wait_seconds`, so fairness can be read
    per band and origin. `position` is the place in its queue (1: served first)."""
    levels = [level.value for level in CRITICAL_CARE_LEVELS]
    reads: list[Read] = []
    for ward in layout.wards:
        reads.append(_read("zrange", keys.ward(ward.id, "waiting"), 0, -1, withscores=True))
        reads.append(_read("hgetall", keys.ward(ward.id, "waiting_request")))
        reads.append(_read("hgetall", keys.ward(ward.id, "waiting_origin")))
        reads.append(_read("hgetall", keys.ward(ward.id, "profile")))
        reads.append(_read("hgetall", keys.ward(ward.id, "reservation")))
    for level in levels:
        reads.append(_read("zrange", keys.level(level, "queue"), 0, -1))
        reads.append(_read("hgetall", keys.level(level, "requests")))
    replies, now = await _read_by_tag(redis, reads)
    requests: list[dict[str, Any]] = []
    per_ward = 5
    ward_replies = replies[: per_ward * len(layout.wards)]
    for index, ward in enumerate(layout.wards):
        waiting, request_ids, origins, profiles, reservations = ward_replies[
            per_ward * index : per_ward * (index + 1)
        ]
        for raw in reservations.values():
            record = json.loads(raw)
            if record.get("kind") != "ward":
                continue  # a critical-care reservation: listed with its level's requests
            requests.append(
                _request(
                    now,
                    origin="ward_admission",
                    request_id=record["request"],
                    patient_id=record["patient"],
                    level_of_care=ward.level_of_care.value,
                    requested_at=float(record["requested_at"]),
                    band=record.get("band"),
                    wait_origin="manual",
                    from_ward=None,
                    state="reserved",
                    ward=ward.id,
                    bed=record["bed"],
                    position=None,
                    **_held(record, holds.ward_hold_minutes if holds else None),
                )
            )
        for position, (patient, score) in enumerate(waiting, start=1):
            profile = json.loads(profiles[patient]) if patient in profiles else {}
            requests.append(
                _request(
                    now,
                    origin="ward_admission",
                    request_id=request_ids.get(patient),  # a bed manager's request, else None
                    patient_id=patient,
                    level_of_care=ward.level_of_care.value,
                    requested_at=float(profile.get("since", score)),
                    band=profile.get("band"),
                    wait_origin=origins.get(patient),
                    from_ward=None,
                    state="waiting",
                    ward=ward.id,
                    bed=None,
                    position=position,
                    reserved_at=None,
                    expires_at=None,
                )
            )
    level_replies = replies[per_ward * len(layout.wards) :]
    for index, level in enumerate(levels):
        queue, records = level_replies[2 * index], level_replies[2 * index + 1]
        positions = {request_id: i for i, request_id in enumerate(queue, start=1)}
        for request_id, raw in records.items():
            record = json.loads(raw)
            requests.append(
                _request(
                    now,
                    origin="critical_care",
                    request_id=request_id,
                    patient_id=record["patient"],
                    level_of_care=record.get("level") or level,
                    requested_at=float(record["requested_at"]),
                    band=record.get("band"),
                    wait_origin="critical_care",
                    from_ward=record.get("from_ward") or None,
                    state=record["state"],
                    ward=record.get("ward") or None,
                    bed=record.get("bed") or None,
                    position=positions.get(request_id),
                    **_held(record, holds.hold_minutes if holds else None),
                )
            )
    requests.sort(key=lambda r: (r["requested_at_epoch"], r["origin"], r["patient_id"]))
    for request in requests:
        del request["requested_at_epoch"]
    return {**_stamp(now), "requests": requests}


def _held(record: dict[str, Any], hold_minutes: float | None) -> dict[str, str | None]:
    """`reserved_at` and `expires_at` of a request record (None while it waits; `expires_at`
    None too without the hold time)."""
    reserved_at = record.get("reserved_at")
    if record.get("state") != "reserved" or reserved_at is None:
        return {"reserved_at": None, "expires_at": None}
    expires = iso(float(reserved_at) + hold_minutes * 60) if hold_minutes is not None else None
    return {"reserved_at": iso(float(reserved_at)), "expires_at": expires}


def _request(now: float, *, requested_at: float, **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "requested_at": iso(requested_at),
        "requested_at_epoch": requested_at,
        "waiting_seconds": round(max(0.0, now - requested_at), 3),
    }
