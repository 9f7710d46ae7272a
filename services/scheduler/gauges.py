"""The scheduler's gauges of the whole hospital, read from the live state in Redis.

`app.py` moves some gauges as it changes a ward (beds by status, patients waiting, occupancy);
every tick `refresh_gauges` reads every ward and critical-care queue of the layout (one
MULTI/EXEC per hash tag, as the HTTP API's views do) and sets all of them, the oldest waits too.
So each replica reports the whole hospital, fresh within a tick: aggregate replicas with `max`,
never `sum`. Only ward and level labels; never a patient or a bed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from schemas.vocabulary import BedStatus
from services.common.hospital import HospitalLayout
from services.common.redis_client import RedisClient
from services.scheduler.domain import BLOCKED_REASONS, CRITICAL_CARE_LEVELS, count_by_status
from services.scheduler.keys import BedKeys
from services.scheduler.metrics import (
    BED_OCCUPANCY,
    BED_REQUEST_OLDEST_WAIT,
    BED_REQUESTS_WAITING,
    BEDS,
    BEDS_BLOCKED,
    CRITICAL_CARE_OLDEST_WAIT,
    CRITICAL_CARE_WAITING,
)
from services.scheduler.views import Read, _read, _read_by_tag


def occupancy_ratio(by_status: Mapping[BedStatus, int]) -> float:
    """Occupied beds over all the ward's beds (blocked ones too); 0 for a ward without beds."""
    total = sum(by_status.values())
    return by_status.get(BedStatus.OCCUPIED, 0) / total if total else 0.0


def oldest_wait_seconds(requested_at: Iterable[float], now: float) -> float:
    """How long the earliest of these requests (epoch seconds) has waited at `now`; 0 if none."""
    return max((max(0.0, now - at) for at in requested_at), default=0.0)


@dataclass(frozen=True)
class WardFigures:
    ward: str
    level_of_care: str
    by_status: dict[BedStatus, int]
    blocked: dict[str, int]  # reason code -> beds
    waiting: int
    oldest_wait_seconds: float


@dataclass(frozen=True)
class LevelFigures:
    level_of_care: str
    queued: int
    oldest_wait_seconds: float


async def read_figures(
    redis: RedisClient, keys: BedKeys, layout: HospitalLayout
) -> tuple[list[WardFigures], list[LevelFigures]]:
    """Every ward's beds, blocks and waits, and every critical-care queue's, at Redis's clock.

    A ward wait runs from the patient's request time (`since` in their profile; the queue score
    holds an acuity credit too); a critical-care wait from its request's `requested_at`, for the
    requests still queued (a reserved bed ends the wait)."""
    reads: list[Read] = []
    for ward in layout.wards:
        reads.append(_read("hvals", keys.ward(ward.id, "status")))
        reads.append(_read("hvals", keys.ward(ward.id, "blocked_reason")))
        reads.append(_read("zrange", keys.ward(ward.id, "waiting"), 0, -1, withscores=True))
        reads.append(_read("hgetall", keys.ward(ward.id, "profile")))
    levels = [level.value for level in CRITICAL_CARE_LEVELS]
    for level in levels:
        reads.append(_read("hvals", keys.level(level, "requests")))
    replies, now = await _read_by_tag(redis, reads)
    wards = []
    for index, ward in enumerate(layout.wards):
        statuses, reasons, waiting, profiles = replies[4 * index : 4 * index + 4]
        since = [
            float(json.loads(profiles[patient]).get("since", score))
            if patient in profiles
            else float(score)
            for patient, score in waiting
        ]
        wards.append(
            WardFigures(
                ward=ward.id,
                level_of_care=ward.level_of_care.value,
                by_status=count_by_status([BedStatus(value) for value in statuses]),
                blocked={reason: reasons.count(reason) for reason in BLOCKED_REASONS},
                waiting=len(waiting),
                oldest_wait_seconds=oldest_wait_seconds(since, now),
            )
        )
    queues = []
    for level, records in zip(levels, replies[4 * len(layout.wards) :], strict=True):
        queued = [json.loads(raw) for raw in records]
        queued = [record for record in queued if record.get("state") == "waiting"]
        requested = [float(record["requested_at"]) for record in queued]
        queues.append(LevelFigures(level, len(queued), oldest_wait_seconds(requested, now)))
    return wards, queues


class GaugeBoard:
    """Sets the gauges from figures; forgets a ward's occupancy series under a level it left."""

    def __init__(self) -> None:
        self._levels: dict[str, str] = {}  # ward -> the level_of_care label of its occupancy

    def ward_counts(
        self, ward: str, level_of_care: str, by_status: Mapping[BedStatus, int], waiting: int
    ) -> None:
        """What a change of the ward shows at once: beds by status, waiting, occupancy (and a
        wait of 0 when nobody waits any more; a longer wait is read at the next tick)."""
        for status, count in by_status.items():
            BEDS.labels(ward, status.value).set(count)
        BED_REQUESTS_WAITING.labels(ward).set(waiting)
        if waiting == 0:
            BED_REQUEST_OLDEST_WAIT.labels(ward).set(0)
        previous = self._levels.get(ward)
        if previous is not None and previous != level_of_care:
            BED_OCCUPANCY.remove(ward, previous)
        self._levels[ward] = level_of_care
        BED_OCCUPANCY.labels(ward, level_of_care).set(occupancy_ratio(by_status))

    def show(self, wards: Iterable[WardFigures], queues: Iterable[LevelFigures]) -> None:
        for figures in wards:
            self.ward_counts(
                figures.ward, figures.level_of_care, figures.by_status, figures.waiting
            )
            for reason, count in figures.blocked.items():
                BEDS_BLOCKED.labels(figures.ward, reason).set(count)
            BED_REQUEST_OLDEST_WAIT.labels(figures.ward).set(figures.oldest_wait_seconds)
        for queue in queues:
            CRITICAL_CARE_WAITING.labels(queue.level_of_care).set(queue.queued)
            CRITICAL_CARE_OLDEST_WAIT.labels(queue.level_of_care).set(queue.oldest_wait_seconds)
