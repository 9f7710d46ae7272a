"""Critical-care beds by acuity with aging, the bed wait metric by band and origin, and the cost
estimate on every decision: the scheduler handler against the real embedded Redis.

With the shipped policy a high-band request with NEWS2 7 is credited 275 minutes and a
medium-band one with 5 is credited 85: the medium request goes first only if it was made more
than 190 minutes (11 400 s) before the high one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.assessments import AssessmentIssued, CriticalCareBedRequested
from schemas.beds import (
    BedAssigned,
    BedRequested,
    BedRequestWaiting,
    BedReservationReleased,
    BedReserved,
    BedStatusReported,
)
from schemas.topics import EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS
from schemas.vocabulary import Band, BedStatus, LevelOfCare
from services.common.hospital import layout_from_dict
from services.scheduler.app import Scheduler
from services.scheduler.policy import DEFAULT_POLICY, policy_from_dict
from services.scheduler.store import CareRequest, RedisBedStore
from tests.support import metric_value

NOW = datetime.now(UTC).replace(microsecond=0)
LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "ED", "level_of_care": "emergency", "beds": 2},
            {"id": "W1", "level_of_care": "general", "beds": 1},
            {"id": "W2", "level_of_care": "general", "beds": 2},
            {"id": "ICU", "level_of_care": "icu", "beds": 1},
        ]
    }
)
DIFFERENCE = 11_400  # seconds: (240 + 7 * 5) - (60 + 5 * 5) minutes


@pytest.fixture
async def scheduler(redis: Redis, unique: str) -> Scheduler:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    return Scheduler(store, LAYOUT)


def envelope(at: datetime = NOW) -> dict[str, Any]:
    return {"event_id": uuid4(), "occurred_at": at, "recorded_at": at, "source": "test"}


def requested(patient: str, band: Band, aggregate: int, at: datetime) -> CriticalCareBedRequested:
    return CriticalCareBedRequested(
        patient_id=patient,
        ward="W2",
        level_of_care="icu",  # type: ignore[arg-type]
        band=band,
        aggregate=aggregate,
        assessment_id=uuid4(),
        reasons=["news2"],
        rules_version="test",
        **envelope(at),
    )


def reported(bed: str, status: BedStatus, ward: str = "ICU") -> BedStatusReported:
    return BedStatusReported(ward=ward, bed=bed, status=status, **envelope())  # type: ignore[arg-type]


def of(kind: type, outputs: Any) -> list[Any]:
    return [o.event for o in outputs if isinstance(o.event, kind)]


async def call(scheduler: Scheduler, event: Any) -> list[Any]:
    """The scheduler's outputs for an event, given on the topic it comes from."""
    if isinstance(event, CriticalCareBedRequested | AssessmentIssued):
        spec = PATIENTS_ASSESSMENTS
    elif isinstance(event, BedRequested):
        spec = SCHEDULING_REQUESTS
    else:
        spec = EVENTS_CLEAN
    return list(await scheduler(spec, event))


async def fill_icu(scheduler: Scheduler) -> None:
    """Someone occupies the one ICU bed."""
    admitted = PatientAdmitted(patient_id="X", ward="ICU", **envelope())
    assert of(BedAssigned, await call(scheduler, admitted))


async def free_icu(scheduler: Scheduler) -> list[Any]:
    """X leaves and housekeeping readies the bed: the outputs of the last step."""
    await call(scheduler, PatientDischarged(patient_id="X", ward="ICU", **envelope()))
    await call(scheduler, reported("ICU-01", BedStatus.CLEANING))
    return await call(scheduler, reported("ICU-01", BedStatus.AVAILABLE))


async def served_first(scheduler: Scheduler, *requests: CriticalCareBedRequested) -> str:
    """With the ICU full, queue the requests in the order given, then free the bed: who got it."""
    await fill_icu(scheduler)
    for request in requests:
        assert of(BedRequestWaiting, await call(scheduler, request))
    (reserved,) = of(BedReserved, await free_icu(scheduler))
    assert await scheduler.store.critical_care_waiting("icu") == len(requests) - 1
    return str(reserved.patient_id)


async def test_a_later_high_band_request_goes_before_an_earlier_medium_one(
    scheduler: Scheduler,
) -> None:
    medium = requested("MEDIUM", Band.MEDIUM, 5, NOW - timedelta(hours=3))
    high = requested("HIGH", Band.HIGH, 7, NOW - timedelta(hours=1))  # 2 h later: < 190 min
    assert await served_first(scheduler, medium, high) == "HIGH"


async def test_a_medium_request_that_waited_longer_than_the_difference_goes_first(
    scheduler: Scheduler,
) -> None:
    high = requested("HIGH", Band.HIGH, 7, NOW - timedelta(seconds=60))
    medium = requested("MEDIUM", Band.MEDIUM, 5, NOW - timedelta(seconds=60 + DIFFERENCE + 1))
    # The high request arrived first, too: arrival order does not matter, request times do.
    assert await served_first(scheduler, high, medium) == "MEDIUM"


async def test_at_exactly_the_difference_the_higher_acuity_goes_first(
    scheduler: Scheduler,
) -> None:
    medium = requested("MEDIUM", Band.MEDIUM, 5, NOW - timedelta(seconds=60 + DIFFERENCE))
    high = requested("HIGH", Band.HIGH, 7, NOW - timedelta(seconds=60))
    # Equal effective times: the Lua queue picks the higher credit, whatever the request ids.
    assert await served_first(scheduler, medium, high) == "HIGH"


async def test_same_acuity_is_first_come_first_served(scheduler: Scheduler) -> None:
    later = requested("LATER", Band.HIGH, 7, NOW - timedelta(minutes=1))
    earlier = requested("EARLIER", Band.HIGH, 7, NOW - timedelta(minutes=2))
    assert await served_first(scheduler, later, earlier) == "EARLIER"


async def test_the_record_keeps_the_real_request_time_band_and_aggregate(
    scheduler: Scheduler,
) -> None:
    await fill_icu(scheduler)
    high = requested("HIGH", Band.HIGH, 7, NOW - timedelta(hours=1))
    await call(scheduler, high)
    store = scheduler.store
    record = json.loads(
        await store.redis.hget(store.keys.level("icu", "requests"), str(high.event_id))
    )
    assert float(record["requested_at"]) == high.recorded_at.timestamp()
    assert (record["band"], record["aggregate"]) == ("high", 7)
    score = await store.redis.zscore(store.keys.level("icu", "queue"), str(high.event_id))
    assert score == high.recorded_at.timestamp() - 275 * 60
    (reserved,) = of(BedReserved, await free_icu(scheduler))
    assert reserved.wait_seconds >= 3600, "the wait runs from the real request time"


async def test_a_request_queued_again_keeps_its_priority(scheduler: Scheduler) -> None:
    # HIGH holds the one ICU bed; MEDIUM, who asked earlier, waits.
    high = requested("HIGH", Band.HIGH, 7, NOW - timedelta(hours=1))
    assert of(BedReserved, await call(scheduler, high))
    medium = requested("MEDIUM", Band.MEDIUM, 5, NOW - timedelta(hours=2))
    assert of(BedRequestWaiting, await call(scheduler, medium))
    # The EHR puts X in the reserved bed: HIGH loses it and is queued again...
    taken = await call(
        scheduler, PatientAdmitted(patient_id="X", ward="ICU", bed="ICU-01", **envelope())
    )
    (released,) = of(BedReservationReleased, taken)
    assert (released.patient_id, released.reason) == ("HIGH", "bed_taken")
    assert await scheduler.store.critical_care_waiting("icu") == 2
    # ...with its acuity: by request time alone MEDIUM would be first.
    (reserved,) = of(BedReserved, await free_icu(scheduler))
    assert reserved.patient_id == "HIGH"


async def test_a_newer_request_takes_over_with_the_newest_acuity_and_the_first_time(
    scheduler: Scheduler,
) -> None:
    await fill_icu(scheduler)
    first = requested("P1", Band.MEDIUM, 5, NOW - timedelta(hours=2))
    other = requested("P2", Band.HIGH, 7, NOW - timedelta(hours=1))
    await call(scheduler, first)
    await call(scheduler, other)
    # P1 deteriorates: a new request, high band, NEWS2 9, keeps P1's place in time.
    newer = requested("P1", Band.HIGH, 9, NOW - timedelta(minutes=1))
    await call(scheduler, newer)
    queue = scheduler.store.keys.level("icu", "queue")
    score = await scheduler.store.redis.zscore(queue, str(newer.event_id))
    assert score == pytest.approx(first.recorded_at.timestamp() - (240 + 9 * 5) * 60, abs=1e-3)
    (reserved,) = of(BedReserved, await free_icu(scheduler))
    assert (reserved.patient_id, reserved.request_id) == ("P1", newer.event_id)


async def test_redelivery_stays_idempotent(scheduler: Scheduler) -> None:
    await fill_icu(scheduler)
    medium = requested("MEDIUM", Band.MEDIUM, 5, NOW - timedelta(hours=3))
    high = requested("HIGH", Band.HIGH, 7, NOW - timedelta(hours=1))
    await call(scheduler, medium)
    first = await call(scheduler, high)
    assert [type(o.event) for o in await call(scheduler, high)] == [type(o.event) for o in first]
    assert await scheduler.store.critical_care_waiting("icu") == 2
    await call(scheduler, PatientDischarged(patient_id="X", ward="ICU", **envelope()))
    await call(scheduler, reported("ICU-01", BedStatus.CLEANING))
    ready = reported("ICU-01", BedStatus.AVAILABLE)
    (reserved,) = of(BedReserved, await call(scheduler, ready))
    (again,) = of(BedReserved, await call(scheduler, ready))
    assert (again.event_id, again.patient_id) == (reserved.event_id, "HIGH")
    assert await scheduler.store.critical_care_waiting("icu") == 1
    assert await scheduler.store.statuses("ICU") == {"ICU-01": BedStatus.RESERVED}


# --- cost estimates -------------------------------------------------------------------------------


async def test_every_reservation_and_assignment_carries_the_cost_estimate(
    scheduler: Scheduler,
) -> None:
    (reserved,) = of(BedReserved, await call(scheduler, requested("P1", Band.HIGH, 7, NOW)))
    assert reserved.cost_estimate is not None
    assert (reserved.cost_estimate.level_of_care, reserved.cost_estimate.per_day) == (
        LevelOfCare.ICU,
        Decimal("2000.00"),
    )
    assert reserved.cost_estimate.tariff_version == DEFAULT_POLICY.tariff.version
    admitted = PatientAdmitted(patient_id="P1", ward="ICU", **envelope())
    (into_reserved,) = of(BedAssigned, await call(scheduler, admitted))
    assert into_reserved.cost_estimate == reserved.cost_estimate
    to_ward = PatientAdmitted(patient_id="P2", ward="W2", **envelope())
    (general,) = of(BedAssigned, await call(scheduler, to_ward))
    assert general.cost_estimate is not None
    assert (general.cost_estimate.level_of_care, general.cost_estimate.per_day) == (
        LevelOfCare.GENERAL,
        Decimal("450.00"),
    )
    assert general.cost_estimate.basis.startswith("one general bed-day at 450.00 GBP")


async def test_the_tariff_comes_from_the_policy_given(scheduler: Scheduler) -> None:
    data = json.loads(DEFAULT_POLICY.model_dump_json())
    data["tariff"].update(version="trust-2026", currency="EUR")
    data["tariff"]["per_day"]["general"] = "512.34"
    mine = Scheduler(scheduler.store, LAYOUT, policy_from_dict(data))
    (assigned,) = of(
        BedAssigned, await call(mine, PatientAdmitted(patient_id="P", ward="W2", **envelope()))
    )
    assert assigned.cost_estimate is not None
    assert assigned.cost_estimate.model_dump(exclude={"basis"}) == {
        "tariff_version": "trust-2026",
        "level_of_care": LevelOfCare.GENERAL,
        "per_day": Decimal("512.34"),
        "currency": "EUR",
    }


# --- fairness: the bed wait by band and origin ----------------------------------------------------


def waits(band: str, origin: str) -> float:
    return metric_value("wardflow_bed_wait_seconds_count", band=band, origin=origin)


async def test_bed_waits_are_measured_by_band_and_origin(scheduler: Scheduler) -> None:
    before = {
        key: waits(*key)
        for key in [
            ("high", "critical_care"),
            ("unknown", "ward"),
            ("unknown", "emergency"),
            ("unknown", "transfer"),
            ("unknown", "critical_care"),
        ]
    }
    total_before = metric_value(
        "wardflow_bed_wait_seconds_sum", band="high", origin="critical_care"
    )
    # A critical-care request reserved an hour after it was made.
    await call(scheduler, requested("CC", Band.HIGH, 7, NOW - timedelta(hours=1)))
    assert waits("high", "critical_care") == before["high", "critical_care"] + 1
    total = metric_value("wardflow_bed_wait_seconds_sum", band="high", origin="critical_care")
    assert total - total_before >= 3600
    # Its patient moving in is not a second wait.
    await call(scheduler, PatientAdmitted(patient_id="CC", ward="ICU", **envelope()))
    assert waits("unknown", "critical_care") == before["unknown", "critical_care"]

    # W1 (one bed): an admission gets it; a patient from ED and one from W2 wait for it.
    await call(scheduler, PatientAdmitted(patient_id="A", ward="W1", **envelope()))
    assert waits("unknown", "ward") == before["unknown", "ward"] + 1
    for patient, from_ward in (("E", "ED"), ("T", "W2")):
        await call(scheduler, PatientAdmitted(patient_id=patient, ward=from_ward, **envelope()))
        move = PatientTransferred(patient_id=patient, from_ward=from_ward, ward="W1", **envelope())
        assert of(BedRequestWaiting, await call(scheduler, move))
    origins = scheduler.store.keys.ward("W1", "waiting_origin")
    assert await scheduler.store.redis.hgetall(origins) == {"E": "emergency", "T": "transfer"}
    # Each freed bed goes to the oldest waiting patient, measured with their origin.
    for leaving in ("A", "E"):
        await call(scheduler, PatientDischarged(patient_id=leaving, ward="W1", **envelope()))
        await call(scheduler, reported("W1-01", BedStatus.CLEANING, "W1"))
        await call(scheduler, reported("W1-01", BedStatus.AVAILABLE, "W1"))
    assert waits("unknown", "emergency") == before["unknown", "emergency"] + 1
    assert waits("unknown", "transfer") == before["unknown", "transfer"] + 1
    assert await scheduler.store.redis.hgetall(origins) == {}, "nothing left behind"


async def test_a_waiting_patient_discharged_leaves_no_origin_behind(scheduler: Scheduler) -> None:
    await call(scheduler, PatientAdmitted(patient_id="A", ward="W1", **envelope()))
    await call(scheduler, PatientAdmitted(patient_id="B", ward="W1", **envelope()))
    origins = scheduler.store.keys.ward("W1", "waiting_origin")
    assert await scheduler.store.redis.hgetall(origins) == {"B": "ward"}
    await call(scheduler, PatientDischarged(patient_id="B", ward="W1", **envelope()))
    assert await scheduler.store.redis.hgetall(origins) == {}
    assert await scheduler.store.waiting_count("W1") == 0


async def test_the_store_serves_by_the_score_it_is_given(scheduler: Scheduler) -> None:
    """The store alone: the Lua queue orders by the score passed, not the request time."""
    store = scheduler.store
    await fill_icu(scheduler)
    early = CareRequest(uuid4(), "EARLY", "icu", 100.0, "W2", "waiting")
    late = CareRequest(uuid4(), "LATE", "icu", 200.0, "W2", "waiting")
    for request, score in ((early, 100.0), (late, 50.0)):
        result = await store.reserve(
            "icu", ("ICU",), uuid4(), step="r", request=request, score=score
        )
        assert result.outcome == "waiting"
        assert result.request is not None
        assert result.request.requested_at_epoch == request.requested_at_epoch
    (reserved,) = of(BedReserved, await free_icu(scheduler))
    assert reserved.patient_id == "LATE"
