"""The scheduler's hospital gauges against real Redis: occupancy, the oldest ward wait and the
oldest queued critical-care request, moved by changes and refreshed by the tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted, PatientDischarged
from schemas.assessments import CriticalCareBedRequested
from schemas.beds import BedStatusReported
from schemas.topics import EVENTS_CLEAN, PATIENTS_ASSESSMENTS
from schemas.vocabulary import Band, BedStatus
from services.common.hospital import layout_from_dict
from services.scheduler.app import Scheduler
from services.scheduler.store import RedisBedStore
from tests.support import metric_value

WARD, ICU = "GAUGE-W", "GAUGE-ICU"
LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": WARD, "level_of_care": "general", "beds": 2},
            {"id": ICU, "level_of_care": "icu", "beds": 1},
        ]
    }
)


@pytest.fixture
async def scheduler(redis: Redis, unique: str) -> Scheduler:
    store = RedisBedStore(redis, f"t{unique}", layout=LAYOUT)
    await store.ensure_layout(LAYOUT)
    return Scheduler(store, LAYOUT)


def envelope(minutes_ago: float = 0) -> dict[str, Any]:
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {"event_id": uuid4(), "occurred_at": at, "recorded_at": at, "source": "test"}


def admitted(patient: str, ward: str = WARD, minutes_ago: float = 0) -> PatientAdmitted:
    return PatientAdmitted(**envelope(minutes_ago), patient_id=patient, ward=ward)


def discharged(patient: str, ward: str = WARD) -> PatientDischarged:
    return PatientDischarged(**envelope(), patient_id=patient, ward=ward)


def icu_requested(patient: str, minutes_ago: float) -> CriticalCareBedRequested:
    return CriticalCareBedRequested(
        **envelope(minutes_ago),
        patient_id=patient,
        ward=WARD,
        level_of_care="icu",
        band=Band.HIGH,
        aggregate=8,
        assessment_id=uuid4(),
        reasons=["news2_high"],
        rules_version="test",
    )


def occupancy(ward: str, level: str) -> float:
    return metric_value("wardflow_bed_occupancy_ratio", ward=ward, level_of_care=level)


def ward_wait(ward: str = WARD) -> float:
    return metric_value("wardflow_bed_request_oldest_wait_seconds", ward=ward)


def icu_wait() -> float:
    return metric_value("wardflow_critical_care_oldest_wait_seconds", level_of_care="icu")


async def test_occupancy_and_the_oldest_ward_wait_follow_admissions_and_the_tick(
    scheduler: Scheduler,
) -> None:
    await scheduler(EVENTS_CLEAN, admitted("P1"))
    assert occupancy(WARD, "general") == 0.5  # set by the change itself
    await scheduler(EVENTS_CLEAN, admitted("P2"))
    await scheduler(EVENTS_CLEAN, admitted("P3", minutes_ago=10))  # no bed left: waits
    await scheduler(EVENTS_CLEAN, admitted("P4", minutes_ago=2))
    assert occupancy(WARD, "general") == 1.0
    await scheduler.tick(frozenset())
    assert 600 <= ward_wait() < 660, "the patient waiting longest, from their request time"
    assert metric_value("wardflow_bed_requests_waiting", ward=WARD) == 2
    assert occupancy(ICU, "icu") == 0.0, "the tick shows wards nothing changed too"
    assert metric_value("wardflow_beds", ward=ICU, status="available") == 1

    await scheduler(EVENTS_CLEAN, discharged("P3"))  # the longest wait ends: P4's remains
    await scheduler.tick(frozenset())
    assert 120 <= ward_wait() < 180
    await scheduler(EVENTS_CLEAN, discharged("P4"))
    assert ward_wait() == 0, "nobody waits: 0 at once, without waiting for the tick"


async def test_oldest_queued_critical_care_request_until_a_bed_is_reserved(
    scheduler: Scheduler,
) -> None:
    await scheduler(EVENTS_CLEAN, admitted("P9", ward=ICU))  # the only ICU bed
    assert occupancy(ICU, "icu") == 1.0
    await scheduler(PATIENTS_ASSESSMENTS, icu_requested("P1", minutes_ago=5))
    await scheduler.tick(frozenset())
    assert 300 <= icu_wait() < 360
    assert metric_value("wardflow_critical_care_requests_waiting", level_of_care="icu") == 1
    await scheduler(EVENTS_CLEAN, discharged("P9", ward=ICU))  # bed dirty: still queued
    await scheduler.tick(frozenset())
    assert icu_wait() >= 300
    assert occupancy(ICU, "icu") == 0.0
    for status in (BedStatus.CLEANING, BedStatus.AVAILABLE):  # housekeeping: the bed is ready
        bed = LAYOUT.wards[1].beds[0]
        report = BedStatusReported(**envelope(), ward=ICU, bed=bed, status=status)
        await scheduler(EVENTS_CLEAN, report)
    assert icu_wait() == 0, "reserved for P1: nothing queued, 0 at once"
    assert metric_value("wardflow_critical_care_requests_waiting", level_of_care="icu") == 0
