"""The scheduler's handling of critical-care bed requests, the handler alone against real Redis:
which decisions each event produces, with deterministic ids, and what the metric counts."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted
from schemas.assessments import (
    AlertEscalated,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
)
from schemas.beds import (
    BedAssigned,
    BedRequestWaiting,
    BedReservationReleased,
    BedReserved,
    BedStateSnapshot,
    BedStatusChanged,
    BedStatusReported,
    WardAvailabilityUpdated,
)
from schemas.topics import EVENTS_CLEAN, PATIENTS_ASSESSMENTS
from schemas.vocabulary import Band, BedStatus
from services.common.hospital import layout_from_dict
from services.scheduler.app import Scheduler
from services.scheduler.policy import Reservations, load_policy
from services.scheduler.store import RedisBedStore
from tests.support import metric_value

NOW = datetime.now(UTC)
ENVELOPE: dict[str, Any] = {"occurred_at": NOW, "recorded_at": NOW, "source": "test"}
LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "W1", "level_of_care": "general", "beds": 3},
            {"id": "ICU", "level_of_care": "icu", "beds": 2},
        ]
    }
)


@pytest.fixture
async def scheduler(redis: Redis, unique: str) -> Scheduler:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    return Scheduler(store, LAYOUT)


def requested(patient: str, level: str = "icu", minute: int = 0) -> CriticalCareBedRequested:
    """A request `minute`s after NOW (the queue is ordered by request time)."""
    at = NOW + timedelta(minutes=minute)
    return CriticalCareBedRequested(
        event_id=uuid4(),
        patient_id=patient,
        ward="W1",
        level_of_care=level,  # type: ignore[arg-type]
        band=Band.HIGH,
        aggregate=7,
        assessment_id=uuid4(),
        reasons=["news2_high"],
        rules_version="test",
        occurred_at=at,
        recorded_at=at,
        source="wardflow-diagnosis",
    )


def withdrawn(request_id: Any, patient: str = "P1") -> CriticalCareBedRequestWithdrawn:
    return CriticalCareBedRequestWithdrawn(
        event_id=uuid4(),
        patient_id=patient,
        request_id=request_id,
        reason="ceiling_of_care",
        **ENVELOPE,
    )


def reported(bed: str, status: BedStatus, ward: str = "ICU") -> BedStatusReported:
    return BedStatusReported(
        event_id=uuid4(),
        ward=ward,
        bed=bed,
        status=status,  # type: ignore[arg-type]
        **ENVELOPE,
    )


def content(event: Any) -> dict[str, Any]:
    """An output without the times of its making (which are when it was produced). A state
    snapshot is identified by the moment Redis was read: only its contents are compared."""
    if isinstance(event, BedStateSnapshot):
        return event.model_dump(include={"scope", "hashes", "sorted_sets"})
    return event.model_dump(exclude={"occurred_at", "recorded_at", "wait_seconds"})


def of(kind: type, outputs: Any) -> list[Any]:
    return [o.event for o in outputs if isinstance(o.event, kind)]


async def call(scheduler: Scheduler, event: Any) -> list[Any]:
    spec = PATIENTS_ASSESSMENTS if isinstance(event, CriticalCareBedRequested) else EVENTS_CLEAN
    outputs = list(await scheduler(spec, event))
    ids = [o.event.event_id for o in outputs]
    assert len(set(ids)) == len(ids), "two outputs of one event share an id"
    return outputs


async def test_assessments_and_escalations_change_nothing(scheduler: Scheduler) -> None:
    escalation = AlertEscalated(
        event_id=uuid4(),
        patient_id="P1",
        assessment_id=uuid4(),
        band=Band.HIGH,
        raised_at=NOW,
        respond_by=NOW,
        escalate_to="critical care outreach",
        rules_version="test",
        **ENVELOPE,
    )
    assert await scheduler(PATIENTS_ASSESSMENTS, escalation) == []


async def test_reservation_outputs_and_metric(scheduler: Scheduler) -> None:
    before = metric_value(
        "wardflow_critical_care_requests_total", level_of_care="icu", outcome="reserved"
    )
    request = requested("P1")
    outputs = await call(scheduler, request)
    (reserved,) = of(BedReserved, outputs)
    assert (reserved.ward, reserved.bed, reserved.request_id) == ("ICU", "ICU-01", request.event_id)
    (changed,) = of(BedStatusChanged, outputs)
    assert changed.status == BedStatus.RESERVED
    (availability,) = of(WardAvailabilityUpdated, outputs)
    assert availability.beds_by_status[BedStatus.RESERVED] == 1
    after = metric_value(
        "wardflow_critical_care_requests_total", level_of_care="icu", outcome="reserved"
    )
    assert after == before + 1

    again = await call(scheduler, request)
    assert [content(o.event) for o in again] == [content(o.event) for o in outputs], (
        "a redelivered request repeats the same decisions, with the same ids"
    )


async def test_request_for_a_level_the_hospital_lacks_waits_without_queueing(
    scheduler: Scheduler,
) -> None:
    request = requested("P1", level="hdu")
    outputs = await call(scheduler, request)
    (waiting,) = of(BedRequestWaiting, outputs)
    assert (waiting.reason, waiting.level_of_care, waiting.ward) == (
        "no_ward_at_level_of_care",
        "hdu",
        "W1",
    )
    assert len(outputs) == 1
    assert await scheduler.store.critical_care_waiting("hdu") == 0


async def test_queued_request_gets_the_bed_housekeeping_makes_available(
    scheduler: Scheduler,
) -> None:
    for patient in ("A", "B"):
        await call(
            scheduler, PatientAdmitted(event_id=uuid4(), patient_id=patient, ward="ICU", **ENVELOPE)
        )
    request = requested("P1")
    (waiting,) = of(BedRequestWaiting, await call(scheduler, request))
    assert (waiting.reason, waiting.request_id) == ("no_bed_available", request.event_id)

    await call(scheduler, reported("ICU-02", BedStatus.DIRTY))
    await call(scheduler, reported("ICU-02", BedStatus.CLEANING))
    ready = reported("ICU-02", BedStatus.AVAILABLE)
    outputs = await call(scheduler, ready)

    (reserved,) = of(BedReserved, outputs)
    assert (reserved.patient_id, reserved.bed, reserved.cause_event_id) == (
        "P1",
        "ICU-02",
        ready.event_id,
    )
    assert [(c.previous_status, c.status) for c in of(BedStatusChanged, outputs)] == [
        (BedStatus.CLEANING, BedStatus.AVAILABLE),
        (BedStatus.AVAILABLE, BedStatus.RESERVED),
    ]
    assert of(WardAvailabilityUpdated, outputs)[-1].beds_by_status[BedStatus.RESERVED] == 1
    assert await scheduler.store.critical_care_waiting("icu") == 0


async def test_named_bed_wins_and_the_freed_reserved_bed_serves_the_queue(
    scheduler: Scheduler,
) -> None:
    first = requested("P1", minute=-3)
    await call(scheduler, first)  # ICU-01
    await call(scheduler, requested("P2", minute=-2))  # ICU-02
    await call(scheduler, requested("P3", minute=-1))  # waits

    placed = PatientAdmitted(
        event_id=uuid4(), patient_id="P1", ward="ICU", bed="ICU-02", **ENVELOPE
    )
    outputs = await call(scheduler, placed)

    statuses = await scheduler.store.statuses("ICU")
    assert statuses == {"ICU-01": BedStatus.RESERVED, "ICU-02": BedStatus.OCCUPIED}
    released = of(BedReservationReleased, outputs)
    assert sorted((r.patient_id, r.bed, r.reason) for r in released) == [
        ("P1", "ICU-01", "placed_in_named_bed"),
        ("P2", "ICU-02", "bed_taken"),
    ]
    # P2 lost ICU-02 to P1 and is queued again at their own request time, before P3: ICU-01,
    # which P1 no longer needs, goes to P2.
    (reserved,) = of(BedReserved, outputs)
    assert (reserved.patient_id, reserved.bed) == ("P2", "ICU-01")
    assert await scheduler.store.critical_care_waiting("icu") == 1
    # P1's request was settled: its withdrawal changes nothing.
    assert await call(scheduler, withdrawn(first.event_id)) == []


async def test_withdrawal_outputs_and_unknown_request(scheduler: Scheduler) -> None:
    request = requested("P1")
    await call(scheduler, request)
    outputs = await call(scheduler, withdrawn(request.event_id))
    (released,) = of(BedReservationReleased, outputs)
    assert (released.bed, released.reason, released.withdrawal_reason) == (
        "ICU-01",
        "request_withdrawn",
        "ceiling_of_care",
    )
    assert [(c.previous_status, c.status) for c in of(BedStatusChanged, outputs)] == [
        (BedStatus.RESERVED, BedStatus.AVAILABLE)
    ]
    assert await call(scheduler, withdrawn(uuid4())) == []
    assert await scheduler.store.statuses("ICU") == dict.fromkeys(
        ("ICU-01", "ICU-02"), BedStatus.AVAILABLE
    )


async def test_admission_into_the_reserved_ward_takes_the_reserved_bed(
    scheduler: Scheduler,
) -> None:
    await call(scheduler, PatientAdmitted(event_id=uuid4(), patient_id="X", ward="ICU", **ENVELOPE))
    request = requested("P1")
    await call(scheduler, request)  # ICU-02
    admission = PatientAdmitted(event_id=uuid4(), patient_id="P1", ward="ICU", **ENVELOPE)
    outputs = await call(scheduler, admission)
    (assigned,) = of(BedAssigned, outputs)
    assert (assigned.patient_id, assigned.bed) == ("P1", "ICU-02")
    assert [(c.previous_status, c.status) for c in of(BedStatusChanged, outputs)] == [
        (BedStatus.RESERVED, BedStatus.OCCUPIED)
    ]
    assert await call(scheduler, withdrawn(request.event_id)) == []
    assert (await scheduler.store.statuses("ICU"))["ICU-02"] == BedStatus.OCCUPIED


async def test_an_unconfirmed_reservation_expires_and_the_bed_goes_to_the_queue(
    redis: Redis, unique: str
) -> None:
    """A reserved bed whose patient never arrives is released after the policy's hold time, and
    the next request in the queue gets it; an arrival in time would have kept it."""
    one_bed = layout_from_dict(
        {
            "wards": [
                {"id": "W1", "level_of_care": "general", "beds": 3},
                {"id": "ICU", "level_of_care": "icu", "beds": 1},
            ]
        }
    )
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(one_bed)
    holds = Reservations(hold_minutes=2 / 60, ward_hold_minutes=60)  # two seconds in critical care
    policy = load_policy().model_copy(update={"reservations": holds})
    scheduler = Scheduler(store, one_bed, policy)
    first, second = requested("P1"), requested("P2", minute=1)
    (held,) = of(BedReserved, await call(scheduler, first))
    await call(scheduler, second)
    assert (held.patient_id, held.bed) == ("P1", "ICU-01")
    assert decisions(await scheduler.tick(frozenset())) == [], "held less than two seconds"

    # Sweep as the service's tick does until the hold (on Redis's whole-second clock) is over.
    deadline, swept = time.monotonic() + 10, []
    while not (swept := decisions_with_snapshots(await scheduler.tick(frozenset()))):
        assert time.monotonic() < deadline, "the reservation never expired"
        await asyncio.sleep(0.2)
    (released,) = of(BedReservationReleased, swept)
    assert (released.patient_id, released.bed, released.reason) == (
        "P1",
        "ICU-01",
        "reservation_expired",
    )
    (reserved,) = of(BedReserved, swept)
    assert (reserved.patient_id, reserved.bed, reserved.request_id) == (
        "P2",
        "ICU-01",
        second.event_id,
    )
    assert [(c.previous_status, c.status) for c in of(BedStatusChanged, swept)] == [
        (BedStatus.RESERVED, BedStatus.AVAILABLE),
        (BedStatus.AVAILABLE, BedStatus.RESERVED),
    ]
    assert (await store.statuses("ICU"))["ICU-01"] == BedStatus.RESERVED
    assert of(BedStateSnapshot, swept), "the sweep's changes reach beds.state"
    # P1's request is gone: its withdrawal changes nothing, and nothing expires twice.
    assert await call(scheduler, withdrawn(first.event_id)) == []
    assert decisions(await scheduler.tick(frozenset())) == []


def decisions_with_snapshots(outputs: Any) -> list[Any]:
    """The sweep's outputs, or nothing when it released nothing (snapshots alone do not count)."""
    return list(outputs) if decisions(outputs) else []


def decisions(outputs: Any) -> list[Any]:
    return [o.event for o in outputs if not isinstance(o.event, BedStateSnapshot)]
