"""What the HTTP API shows: reads of the live bed state in Redis, each stamped with Redis's clock.

Each view reads its keys and `TIME` in one MULTI/EXEC, so `as_of` is the instant the data was true
(like the level scripts, this needs a single Redis, not a Cluster). Key names follow the layout in
`scripts.py` (docs/architecture.md §11); the store writes them, these functions only read.
Patient ids in the answers are pseudonyms (§13); nothing here logs them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from schemas.vocabulary import BedStatus
from services.common.hospital import HospitalLayout, Ward
from services.scheduler.domain import CRITICAL_CARE_LEVELS, count_by_status

SOURCE = "redis-live-state"
"""The `source` of every answer: Redis's live bed state, not a Kafka replay."""


def ward_key(prefix: str, ward: str, part: str) -> str:
    return f"{prefix}:{{ward:{ward}}}:{part}"


def level_key(prefix: str, level: str, part: str) -> str:
    return f"{prefix}:{{level:{level}}}:{part}"


def _instant(time_reply: Any) -> float:
    seconds, micros = (int(part) for part in time_reply)
    return seconds + micros / 1_000_000


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _stamp(now: float) -> dict[str, str]:
    return {"as_of": iso(now), "source": SOURCE}


async def wards(redis: Redis, prefix: str, layout: HospitalLayout) -> dict[str, Any]:
    """Beds by status and patients waiting, per ward of the layout."""
    async with redis.pipeline(transaction=True) as pipe:
        for ward in layout.wards:
            pipe.hvals(ward_key(prefix, ward.id, "status"))
            pipe.zcard(ward_key(prefix, ward.id, "waiting"))
        pipe.time()
        replies = await pipe.execute()
    now = _instant(replies[-1])
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


async def ward_beds(redis: Redis, prefix: str, ward: Ward) -> dict[str, Any]:
    """Every bed of one ward, in layout order, with its status, for a blocked bed the recorded
    reason code (null otherwise), its bay and the bay's sex policy (null in a ward without bays)
    and its capabilities (from the layout)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hgetall(ward_key(prefix, ward.id, "status"))
        pipe.hgetall(ward_key(prefix, ward.id, "blocked_reason"))
        pipe.time()
        statuses, reasons, time_reply = await pipe.execute()
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
    return {**_stamp(_instant(time_reply)), "ward": ward.id, "beds": beds}


async def patient_ward(
    redis: Redis, prefix: str, layout: HospitalLayout, patient_id: str
) -> str | None:
    """The ward where the live state has the patient in a bed (the first in layout order)."""
    async with redis.pipeline(transaction=False) as pipe:
        for ward in layout.wards:
            pipe.hexists(ward_key(prefix, ward.id, "patient_bed"), patient_id)
        found = await pipe.execute()
    return next((ward.id for ward, has in zip(layout.wards, found, strict=True) if has), None)


async def open_requests(redis: Redis, prefix: str, layout: HospitalLayout) -> dict[str, Any]:
    """Every open bed request, oldest first: patients waiting for a ward (`ward_admission`) and
    critical-care requests per level (`critical_care`: queued, or holding a reserved bed)."""
    levels = [level.value for level in CRITICAL_CARE_LEVELS]
    async with redis.pipeline(transaction=True) as pipe:
        for ward in layout.wards:
            pipe.zrange(ward_key(prefix, ward.id, "waiting"), 0, -1, withscores=True)
            pipe.hgetall(ward_key(prefix, ward.id, "waiting_request"))
        for level in levels:
            pipe.zrange(level_key(prefix, level, "queue"), 0, -1)
            pipe.hgetall(level_key(prefix, level, "requests"))
        pipe.time()
        replies = await pipe.execute()
    now = _instant(replies[-1])
    requests: list[dict[str, Any]] = []
    ward_replies = replies[: 2 * len(layout.wards)]
    for index, ward in enumerate(layout.wards):
        waiting, request_ids = ward_replies[2 * index], ward_replies[2 * index + 1]
        for position, (patient, requested_at) in enumerate(waiting, start=1):
            requests.append(
                _request(
                    now,
                    origin="ward_admission",
                    request_id=request_ids.get(patient),  # a bed manager's request, else None
                    patient_id=patient,
                    level_of_care=ward.level_of_care.value,
                    requested_at=float(requested_at),
                    from_ward=None,
                    state="waiting",
                    ward=ward.id,
                    bed=None,
                    position=position,
                )
            )
    level_replies = replies[2 * len(layout.wards) : -1]
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
                    from_ward=record.get("from_ward") or None,
                    state=record["state"],
                    ward=record.get("ward") or None,
                    bed=record.get("bed") or None,
                    position=positions.get(request_id),
                )
            )
    requests.sort(key=lambda r: (r["requested_at_epoch"], r["origin"], r["patient_id"]))
    for request in requests:
        del request["requested_at_epoch"]
    return {**_stamp(now), "requests": requests}


def _request(now: float, *, requested_at: float, **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "requested_at": iso(requested_at),
        "requested_at_epoch": requested_at,
        "waiting_seconds": round(max(0.0, now - requested_at), 3),
    }
