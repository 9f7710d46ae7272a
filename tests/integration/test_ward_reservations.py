"""A bed manager's ward request reserves a bed with a time-to-live: the ADT that moves the patient
in confirms it, a cancellation or the end of the hold releases it, and the EHR wins over it. The
scheduler handler against the real embedded Redis (the API and broker path: test_scheduler_writes).

W1 has two beds; ED is where patients wait. The policy's ward hold is two seconds in the expiry
tests (Redis's clock counts whole seconds), the shipped 60 minutes elsewhere."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.beds import (
    BedAssigned,
    BedRequestCancelled,
    BedRequested,
    BedRequestWaiting,
    BedReservationReleased,
    BedReserved,
    BedStatusChanged,
    BedStatusReported,
)
from schemas.vocabulary import Band, BedStatus
from services.common.hospital import layout_from_dict
from services.scheduler.app import Scheduler
from services.scheduler.policy import Reservations, load_policy
from services.scheduler.store import RedisBedStore
from tests.integration.test_scheduler_priority import call, envelope, of
from tests.support import metric_value

LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "ED", "level_of_care": "emergency", "beds": 4},
            {"id": "W1", "level_of_care": "general", "beds": 2},
        ]
    }
)


def scheduler_with(store: RedisBedStore, ward_hold_minutes: float = 60) -> Scheduler:
    policy = load_policy()
    holds = Reservations(hold_minutes=120, ward_hold_minutes=ward_hold_minutes)
    return Scheduler(store, LAYOUT, policy.model_copy(update={"reservations": holds}))


@pytest.fixture
async def store(redis: Redis, unique: str) -> RedisBedStore:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    return store


@pytest.fixture
def scheduler(store: RedisBedStore) -> Scheduler:
    return scheduler_with(store)


def request(patient: str, ward: str = "W1", **fields: Any) -> BedRequested:
    return BedRequested(
        patient_id=patient, ward=ward, requested_by="bed-office", **fields, **envelope()
    )


def cancelled(request_id: UUID) -> BedRequestCancelled:
    return BedRequestCancelled(request_id=request_id, cancelled_by="bed-office", **envelope())


def admitted(patient: str, bed: str | None = None) -> PatientAdmitted:
    return PatientAdmitted(patient_id=patient, ward="W1", bed=bed, **envelope())


def reported(bed: str, status: BedStatus) -> BedStatusReported:
    return BedStatusReported(ward="W1", bed=bed, status=status, **envelope())  # type: ignore[arg-type]


async def statuses(scheduler: Scheduler) -> dict[str, str]:
    return dict(await scheduler.store.statuses("W1"))


async def reserved_for(scheduler: Scheduler, patient: str, **fields: Any) -> BedReserved:
    outputs = await call(scheduler, request(patient, **fields))
    (held,) = of(BedReserved, outputs)
    assert held.patient_id == patient and not of(BedAssigned, outputs)
    return held


async def test_a_request_reserves_a_bed_and_the_admission_confirms_it(
    scheduler: Scheduler,
) -> None:
    waits_before = metric_value("wardflow_bed_wait_seconds_count", band="unknown", origin="manual")
    outputs = await call(scheduler, request("P1"))
    (held,) = of(BedReserved, outputs)
    (changed,) = of(BedStatusChanged, outputs)
    assert (held.ward, held.bed, held.level_of_care) == ("W1", "W1-01", "general")
    assert held.cost_estimate is not None and held.cost_estimate.level_of_care == "general"
    assert (changed.bed, changed.previous_status, changed.status) == (
        "W1-01",
        "available",
        "reserved",
    )
    assert await statuses(scheduler) == {"W1-01": "reserved", "W1-02": "available"}
    # The wait to a bed is measured once, at the reservation (origin: a bed manager's request).
    waits = metric_value("wardflow_bed_wait_seconds_count", band="unknown", origin="manual")
    assert waits == waits_before + 1

    arrival = await call(scheduler, admitted("P1"))
    (assigned,) = of(BedAssigned, arrival)
    (moved_in,) = of(BedStatusChanged, arrival)
    assert (assigned.patient_id, assigned.bed) == ("P1", "W1-01")
    assert (moved_in.previous_status, moved_in.status) == ("reserved", "occupied")
    assert await statuses(scheduler) == {"W1-01": "occupied", "W1-02": "available"}
    assert metric_value("wardflow_bed_wait_seconds_count", band="unknown", origin="manual") == waits
    # Confirmed: no expiry can touch it any more.
    assert of(BedReservationReleased, await scheduler.tick(frozenset())) == []


async def test_a_transfer_into_the_reserved_bed_confirms_it(scheduler: Scheduler) -> None:
    await call(scheduler, PatientAdmitted(patient_id="P1", ward="ED", **envelope()))
    held = await reserved_for(scheduler, "P1")
    transfer = PatientTransferred(
        patient_id="P1", from_ward="ED", ward="W1", bed=held.bed, **envelope()
    )
    outputs = await call(scheduler, transfer)
    assert not of(BedReservationReleased, outputs)
    assert await statuses(scheduler) == {"W1-01": "occupied", "W1-02": "available"}
    assert (await scheduler.store.statuses("ED"))["ED-01"] == "dirty"


async def test_a_second_request_for_the_same_patient_keeps_their_one_bed(
    scheduler: Scheduler,
) -> None:
    await reserved_for(scheduler, "P1")
    again = await call(scheduler, request("P1"))
    assert not of(BedReserved, again) and not of(BedStatusChanged, again)
    assert await statuses(scheduler) == {"W1-01": "reserved", "W1-02": "available"}


async def test_a_redelivered_request_changes_nothing_more(scheduler: Scheduler) -> None:
    event = request("P1")
    first = await call(scheduler, event)
    second = await call(scheduler, event)
    assert [o.event_id for o in of(BedReserved, first)] == [
        o.event_id for o in of(BedReserved, second)
    ]
    assert await statuses(scheduler) == {"W1-01": "reserved", "W1-02": "available"}


async def test_a_waiting_request_gets_the_freed_bed_reserved_not_occupied(
    scheduler: Scheduler,
) -> None:
    for patient in ("X1", "X2"):
        await call(scheduler, admitted(patient))
    asked = request("P1", band=Band.MEDIUM)
    (waiting,) = of(BedRequestWaiting, await call(scheduler, asked))
    assert waiting.reason == "no_bed_available"
    await call(scheduler, PatientDischarged(patient_id="X1", ward="W1", **envelope()))
    await call(scheduler, reported("W1-01", BedStatus.CLEANING))
    outputs = await call(scheduler, reported("W1-01", BedStatus.AVAILABLE))
    (held,) = of(BedReserved, outputs)
    assert (held.patient_id, held.bed, held.request_id) == ("P1", "W1-01", asked.event_id)
    assert not of(BedAssigned, outputs)
    assert [(c.previous_status, c.status) for c in of(BedStatusChanged, outputs)] == [
        ("cleaning", "available"),
        ("available", "reserved"),
    ]
    assert await scheduler.store.waiting_count("W1") == 0


async def test_the_ehr_placing_the_patient_in_another_bed_releases_the_reserved_one(
    scheduler: Scheduler,
) -> None:
    held = await reserved_for(scheduler, "P1")
    outputs = await call(scheduler, admitted("P1", bed="W1-02"))
    (released,) = of(BedReservationReleased, outputs)
    assert (released.bed, released.reason, released.request_id) == (
        "W1-01",
        "placed_in_named_bed",
        held.request_id,
    )
    assert released.level_of_care == "general"
    assert await statuses(scheduler) == {"W1-01": "available", "W1-02": "occupied"}


async def test_another_patient_placed_in_the_reserved_bed_sends_the_holder_to_a_free_one(
    scheduler: Scheduler,
) -> None:
    held = await reserved_for(scheduler, "P1")
    outputs = await call(scheduler, admitted("OTHER", bed=held.bed))
    (released,) = of(BedReservationReleased, outputs)
    assert (released.patient_id, released.bed, released.reason) == ("P1", "W1-01", "bed_taken")
    (again,) = of(BedReserved, outputs)
    assert (again.patient_id, again.bed, again.request_id) == ("P1", "W1-02", held.request_id)
    assert await statuses(scheduler) == {"W1-01": "occupied", "W1-02": "reserved"}


async def test_a_blocked_reserved_bed_puts_its_holder_back_in_the_queue_first(
    scheduler: Scheduler,
) -> None:
    await call(scheduler, admitted("X1"))
    held = await reserved_for(scheduler, "P1")  # W1-02, the last free bed
    later = request("P2")
    assert of(BedRequestWaiting, await call(scheduler, later))

    outputs = await call(scheduler, reported(held.bed, BedStatus.BLOCKED))
    (released,) = of(BedReservationReleased, outputs)
    assert (released.patient_id, released.reason) == ("P1", "bed_taken")
    (waiting,) = of(BedRequestWaiting, outputs)
    assert (waiting.patient_id, waiting.request_id, waiting.reason) == (
        "P1",
        held.request_id,
        "no_bed_available",
    )
    # P1 keeps their first place: the next bed freed is reserved for them, not for P2.
    await call(scheduler, PatientDischarged(patient_id="X1", ward="W1", **envelope()))
    await call(scheduler, reported("W1-01", BedStatus.CLEANING))
    (served,) = of(BedReserved, await call(scheduler, reported("W1-01", BedStatus.AVAILABLE)))
    assert (served.patient_id, served.request_id) == ("P1", held.request_id)


async def test_cancelling_a_reserved_request_frees_the_bed_for_the_next_in_line(
    scheduler: Scheduler,
) -> None:
    first = await reserved_for(scheduler, "P1")
    await reserved_for(scheduler, "P2")
    third = request("P3")
    assert of(BedRequestWaiting, await call(scheduler, third))
    outputs = await call(scheduler, cancelled(first.request_id))
    (released,) = of(BedReservationReleased, outputs)
    assert (released.reason, released.withdrawal_reason) == ("request_withdrawn", "cancelled")
    (served,) = of(BedReserved, outputs)
    assert (served.patient_id, served.bed, served.request_id) == ("P3", "W1-01", third.event_id)
    assert await scheduler.store.profile("W1", "P1") is None


async def test_an_unconfirmed_reservation_expires_back_to_available(store: RedisBedStore) -> None:
    scheduler = scheduler_with(store, ward_hold_minutes=2 / 60)  # two seconds
    first = await reserved_for(scheduler, "P1")
    assert of(BedReservationReleased, await scheduler.tick(frozenset())) == []

    released = await tick_until_released(scheduler)
    assert (released.patient_id, released.bed, released.reason) == (
        "P1",
        "W1-01",
        "reservation_expired",
    )
    assert released.request_id == first.request_id
    assert await statuses(scheduler) == {"W1-01": "available", "W1-02": "available"}
    assert await store.profile("W1", "P1") is None
    # Too late: the patient arriving now is simply allocated a bed.
    (assigned,) = of(BedAssigned, await call(scheduler, admitted("P1")))
    assert assigned.bed == "W1-01"


async def test_an_expired_reservation_goes_to_the_next_waiting_request(
    store: RedisBedStore,
) -> None:
    scheduler = scheduler_with(store, ward_hold_minutes=2 / 60)
    await call(scheduler, admitted("X1"))
    await reserved_for(scheduler, "P1")
    second = request("P2")
    assert of(BedRequestWaiting, await call(scheduler, second))
    released = await tick_until_released(scheduler)
    assert released.patient_id == "P1"
    held = (await store.redis.hgetall(store.keys.ward("W1", "reservation")))["W1-02"]
    assert str(second.event_id) in held  # reserved for P2, with a hold of its own
    assert await statuses(scheduler) == {"W1-01": "occupied", "W1-02": "reserved"}


async def tick_until_released(scheduler: Scheduler) -> BedReservationReleased:
    """Sweep as the service's tick does until a reservation is released (at most 5 s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        released = of(BedReservationReleased, await scheduler.tick(frozenset()))
        if released:
            (one,) = released
            return one  # type: ignore[no-any-return]
        await asyncio.sleep(0.2)
    raise AssertionError("no reservation expired within 5 s")
