"""The scheduler stage against the real embedded broker and Redis: clean ADT and housekeeping
events and critical-care bed requests in, bed changes, decisions and availability out, live state
in Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.assessments import (
    AssessmentIssued,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
)
from schemas.beds import (
    BedAssigned,
    BedRequestWaiting,
    BedReservationReleased,
    BedReserved,
    BedStatusChanged,
    BedStatusReported,
    BedTransitionRefused,
    WardAvailabilityUpdated,
)
from schemas.topics import (
    BEDS_AVAILABILITY,
    BEDS_EVENTS,
    EVENTS_CLEAN,
    EVENTS_DLQ,
    PATIENTS_ASSESSMENTS,
    SCHEDULING_DECISIONS,
    full_name,
)
from schemas.vocabulary import Band, BedStatus, LevelOfCare
from services.common.embedded import EmbeddedServer
from services.common.handlers import Rejected
from services.common.hospital import layout_from_dict
from services.common.stage import StageRunner
from services.scheduler.app import HANDLED_KINDS, Scheduler
from services.scheduler.config import SchedulerSettings
from services.scheduler.store import RedisBedStore
from tests.support import RunningStage, collect, publish

NOW = datetime.now(UTC)
ENVELOPE: dict[str, Any] = {"occurred_at": NOW, "recorded_at": NOW, "source": "ehr"}
LAYOUT = layout_from_dict(
    {
        "version": "test",
        "wards": [
            {"id": "W1", "level_of_care": "general", "beds": 3},
            {"id": "W2", "level_of_care": "icu", "beds": 1},
        ],
    }
)


def admitted(patient: str, ward: str = "W1", **extra: Any) -> PatientAdmitted:
    return PatientAdmitted(event_id=uuid4(), patient_id=patient, ward=ward, **ENVELOPE, **extra)


def discharged(patient: str, ward: str = "W1") -> PatientDischarged:
    return PatientDischarged(event_id=uuid4(), patient_id=patient, ward=ward, **ENVELOPE)


def reported(bed: str, status: BedStatus, ward: str = "W1") -> BedStatusReported:
    return BedStatusReported(
        event_id=uuid4(),
        ward=ward,
        bed=bed,
        status=status,  # type: ignore[arg-type]
        occurred_at=NOW,
        recorded_at=NOW,
        source="housekeeping",
    )


def bed_requested(patient: str, level: str = "icu", ward: str = "W1") -> CriticalCareBedRequested:
    return CriticalCareBedRequested(
        event_id=uuid4(),
        patient_id=patient,
        ward=ward,
        level_of_care=level,  # type: ignore[arg-type]
        band=Band.HIGH,
        aggregate=8,
        assessment_id=uuid4(),
        reasons=["news2_high"],
        rules_version="test",
        occurred_at=NOW,
        recorded_at=NOW,
        source="wardflow-diagnosis",
    )


def request_withdrawn(request: CriticalCareBedRequested) -> CriticalCareBedRequestWithdrawn:
    return CriticalCareBedRequestWithdrawn(
        event_id=uuid4(),
        patient_id=request.patient_id,
        ward=request.ward,
        request_id=request.event_id,
        reason="improved",
        occurred_at=NOW,
        recorded_at=NOW,
        source="wardflow-diagnosis",
    )


def assessment(patient: str) -> AssessmentIssued:
    return AssessmentIssued(
        event_id=uuid4(),
        patient_id=patient,
        ward="W1",
        aggregate=8,
        band=Band.HIGH,
        complete=True,
        sub_scores=[],
        clinical_response="emergency assessment",
        state_version=1,
        cause_recorded_at=NOW,
        occurred_at=NOW,
        recorded_at=NOW,
        source="wardflow-diagnosis",
    )


def caused_by(event: Any) -> Any:
    """A predicate: some collected event names `event` as its cause."""
    return lambda events: any(getattr(e, "cause_event_id", None) == event.event_id for e in events)


@dataclass
class Harness:
    settings: SchedulerSettings
    store: RedisBedStore
    producer: AIOKafkaProducer
    kafka_url: str

    async def send(self, *events: Any) -> None:
        await publish(self.producer, self.settings, EVENTS_CLEAN, *events)

    async def send_assessments(self, *events: Any) -> None:
        await publish(self.producer, self.settings, PATIENTS_ASSESSMENTS, *events)

    async def read(self, spec: Any, until: Any) -> list[Any]:
        return await collect(self.kafka_url, self.settings, spec, until)

    async def statuses(self, ward: str = "W1") -> dict[str, BedStatus]:
        return await self.store.statuses(ward)


@pytest.fixture
async def store(redis: Redis, unique: str) -> RedisBedStore:
    bed_store = RedisBedStore(redis, f"t{unique}")
    await bed_store.ensure_layout(LAYOUT)
    return bed_store


@pytest.fixture
async def stage(
    settings_factory: Any,
    redis_server: EmbeddedServer,
    unique: str,
    store: RedisBedStore,
    producer: AIOKafkaProducer,
    kafka: EmbeddedServer,
) -> AsyncIterator[Harness]:
    settings = await settings_factory(
        SchedulerSettings, redis_url=redis_server.url, redis_key_prefix=f"t{unique}"
    )
    assert store.prefix == settings.redis_key_prefix
    runner = StageRunner(
        "scheduler",
        settings,
        [EVENTS_CLEAN, PATIENTS_ASSESSMENTS],
        Scheduler(store, LAYOUT),
        kinds=HANDLED_KINDS,  # as the service runs it
    )
    async with RunningStage(runner):
        yield Harness(settings, store, producer, kafka.url)


async def test_admission_without_bed_is_assigned_one(stage: Harness) -> None:
    admission = admitted("P1")
    await stage.send(admission)

    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(admission))
    changes = await stage.read(BEDS_EVENTS, caused_by(admission))
    availability = await stage.read(BEDS_AVAILABILITY, lambda events: len(events) >= 1)

    (assigned,) = decisions
    assert isinstance(assigned, BedAssigned)
    assert (assigned.patient_id, assigned.ward, assigned.bed) == ("P1", "W1", "W1-01")
    assert assigned.wait_seconds >= 0
    (changed,) = changes
    assert isinstance(changed, BedStatusChanged)
    assert (changed.ward, changed.bed, changed.previous_status, changed.status) == (
        "W1",
        "W1-01",
        BedStatus.AVAILABLE,
        BedStatus.OCCUPIED,
    )
    (ward,) = availability
    assert isinstance(ward, WardAvailabilityUpdated)
    assert (ward.ward, ward.level_of_care, ward.total_beds) == ("W1", LevelOfCare.GENERAL, 3)
    assert ward.beds_by_status[BedStatus.OCCUPIED] == 1
    assert ward.beds_by_status[BedStatus.AVAILABLE] == 2
    assert (await stage.statuses())["W1-01"] == BedStatus.OCCUPIED


async def test_discharge_then_housekeeping_makes_the_bed_available_again(stage: Harness) -> None:
    admission, discharge = admitted("P1"), discharged("P1")
    cleaning, clean = reported("W1-01", BedStatus.CLEANING), reported("W1-01", BedStatus.AVAILABLE)

    # Admission and discharge are keyed by patient, the reports by ward: wait for each outcome
    # before sending what depends on it.
    await stage.send(admission, discharge)
    await stage.read(BEDS_EVENTS, caused_by(discharge))
    assert (await stage.statuses())["W1-01"] == BedStatus.DIRTY

    await stage.send(cleaning, clean)
    changes = await stage.read(BEDS_EVENTS, caused_by(clean))
    assert [(c.bed, c.previous_status, c.status) for c in changes] == [
        ("W1-01", BedStatus.AVAILABLE, BedStatus.OCCUPIED),
        ("W1-01", BedStatus.OCCUPIED, BedStatus.DIRTY),
        ("W1-01", BedStatus.DIRTY, BedStatus.CLEANING),
        ("W1-01", BedStatus.CLEANING, BedStatus.AVAILABLE),
    ]
    assert (await stage.statuses())["W1-01"] == BedStatus.AVAILABLE
    availability = await stage.read(BEDS_AVAILABILITY, lambda events: len(events) >= 4)
    assert [a.beds_by_status[BedStatus.AVAILABLE] for a in availability] == [2, 2, 2, 3]
    assert [a.beds_by_status[BedStatus.DIRTY] for a in availability] == [0, 1, 0, 0]


async def test_illegal_bed_report_is_refused_and_changes_nothing(stage: Harness) -> None:
    illegal = reported("W1-02", BedStatus.CLEANING)  # an available bed cannot be "cleaning"
    await stage.send(illegal)

    (refused,) = await stage.read(SCHEDULING_DECISIONS, caused_by(illegal))
    assert isinstance(refused, BedTransitionRefused)
    assert (refused.ward, refused.bed) == ("W1", "W1-02")
    assert (refused.current_status, refused.requested_status) == (
        BedStatus.AVAILABLE,
        BedStatus.CLEANING,
    )
    assert await stage.statuses() == dict.fromkeys(("W1-01", "W1-02", "W1-03"), BedStatus.AVAILABLE)


async def test_report_about_an_unknown_bed_is_refused(stage: Harness) -> None:
    report = reported("W1-99", BedStatus.BLOCKED)
    await stage.send(report)
    (refused,) = await stage.read(SCHEDULING_DECISIONS, caused_by(report))
    assert isinstance(refused, BedTransitionRefused)
    assert (refused.bed, refused.current_status) == ("W1-99", None)
    assert "W1-99" not in await stage.statuses()


async def test_admission_to_an_unknown_ward_is_dead_lettered(stage: Harness) -> None:
    admission = admitted("P1", ward="NOWHERE")
    await stage.send(admission)
    (letter,) = await stage.read(EVENTS_DLQ, lambda events: len(events) >= 1)
    assert (letter.stage, letter.reason) == ("scheduler", "unknown_ward")
    assert "NOWHERE" in letter.detail
    assert letter.original_value == admission.model_dump_json()


async def test_kinds_it_does_not_act_on_are_skipped_undecoded_and_unreadable_ones_dead_lettered(
    stage: Harness,
) -> None:
    clean = full_name(EVENTS_CLEAN, stage.settings.topic_prefix)
    skipped = b'{"event_id":"x","kind":"VitalSignsRecorded","vitals":'  # not even JSON
    unreadable = b'{"vitals": {"kind": "VitalSignsRecorded"'  # no top-level kind to read
    for value in (skipped, unreadable):
        await stage.producer.send_and_wait(clean, value=value, key=b"P1")
    marker = admitted("P1")
    await stage.send(marker)
    await stage.read(SCHEDULING_DECISIONS, caused_by(marker))
    letters = await stage.read(EVENTS_DLQ, lambda events: len(events) >= 1)
    assert [(e.reason, e.original_value.encode()) for e in letters] == [
        ("invalid_event", unreadable)
    ]


async def test_redelivered_admission_does_not_take_a_second_bed(stage: Harness) -> None:
    admission, discharge = admitted("P1"), discharged("P1")
    # A replay after the discharge: P1 holds no bed any more, only the event id can tell.
    # The marker has the same key (P1), so the same partition: once it is answered, all was handled.
    marker = admitted("P1", ward="W2")
    await stage.send(admission, discharge, admission, marker)
    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(marker))

    assert await stage.statuses() == {
        "W1-01": BedStatus.DIRTY,
        "W1-02": BedStatus.AVAILABLE,
        "W1-03": BedStatus.AVAILABLE,
    }, "the redelivered admission took a second bed"
    repeated = [d for d in decisions if d.cause_event_id == admission.event_id]
    assert [(d.patient_id, d.bed) for d in repeated] == [("P1", "W1-01"), ("P1", "W1-01")]
    assert repeated[0].event_id == repeated[1].event_id, "a redelivery repeats the same decision"


async def test_full_ward_queues_and_assigns_when_a_bed_is_ready(stage: Harness) -> None:
    holder, waiter = admitted("P1", ward="W2"), admitted("P2", ward="W2")
    await stage.send(holder)  # keyed by patient: wait before sending the other patient
    await stage.read(SCHEDULING_DECISIONS, caused_by(holder))
    await stage.send(waiter)
    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(waiter))
    waiting = [d for d in decisions if isinstance(d, BedRequestWaiting)]
    assert [(w.patient_id, w.ward, w.reason) for w in waiting] == [("P2", "W2", "no_bed_available")]

    discharge = discharged("P1", ward="W2")
    await stage.send(discharge)
    await stage.read(BEDS_EVENTS, caused_by(discharge))
    ready = [
        reported("W2-01", BedStatus.CLEANING, "W2"),
        reported("W2-01", BedStatus.AVAILABLE, "W2"),
    ]
    await stage.send(*ready)
    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(ready[1]))
    assigned = [d for d in decisions if d.cause_event_id == ready[1].event_id]
    assert [(a.patient_id, a.bed) for a in assigned] == [("P2", "W2-01")]
    assert await stage.statuses("W2") == {"W2-01": BedStatus.OCCUPIED}


async def test_critical_care_request_reserves_a_bed_the_transfer_then_takes(
    stage: Harness,
) -> None:
    admission, request = admitted("P1"), bed_requested("P1")
    await stage.send(admission)
    await stage.read(SCHEDULING_DECISIONS, caused_by(admission))
    # Assessments and escalations travel on the same topic; the scheduler ignores them.
    await stage.send_assessments(assessment("P1"), request)

    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(request))
    changes = await stage.read(BEDS_EVENTS, caused_by(request))

    reserved = [d for d in decisions if d.cause_event_id == request.event_id]
    assert len(reserved) == 1
    assert isinstance(reserved[0], BedReserved)
    assert (reserved[0].patient_id, reserved[0].ward, reserved[0].bed) == ("P1", "W2", "W2-01")
    assert (reserved[0].request_id, reserved[0].level_of_care) == (request.event_id, "icu")
    assert reserved[0].wait_seconds >= 0
    changed = [c for c in changes if c.cause_event_id == request.event_id]
    assert [(c.ward, c.bed, c.previous_status, c.status) for c in changed] == [
        ("W2", "W2-01", BedStatus.AVAILABLE, BedStatus.RESERVED)
    ]
    availability = await stage.read(
        BEDS_AVAILABILITY, lambda events: any(e.ward == "W2" for e in events)
    )
    (icu,) = [a for a in availability if a.ward == "W2"]
    assert icu.beds_by_status[BedStatus.RESERVED] == 1
    assert await stage.statuses("W2") == {"W2-01": BedStatus.RESERVED}

    transfer = PatientTransferred(
        event_id=uuid4(), patient_id="P1", from_ward="W1", ward="W2", **ENVELOPE
    )
    await stage.send(transfer)
    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(transfer))
    assigned = [d for d in decisions if d.cause_event_id == transfer.event_id]
    assert [(type(a), a.patient_id, a.ward, a.bed) for a in assigned] == [
        (BedAssigned, "P1", "W2", "W2-01")
    ]
    assert await stage.statuses("W2") == {"W2-01": BedStatus.OCCUPIED}
    assert (await stage.statuses())["W1-01"] == BedStatus.DIRTY


async def test_critical_care_request_is_queued_and_withdrawn(stage: Harness) -> None:
    holder, waiter = bed_requested("P1"), bed_requested("P2")
    await stage.send_assessments(holder)
    await stage.read(SCHEDULING_DECISIONS, caused_by(holder))
    await stage.send_assessments(waiter, waiter)  # and a redelivery
    decisions = await stage.read(
        SCHEDULING_DECISIONS,
        lambda events: sum(e.cause_event_id == waiter.event_id for e in events) >= 2,
    )
    waiting = [d for d in decisions if d.cause_event_id == waiter.event_id]
    assert all(isinstance(w, BedRequestWaiting) for w in waiting)
    assert [(w.patient_id, w.ward, w.level_of_care, w.request_id) for w in waiting] == [
        ("P2", "W1", "icu", waiter.event_id)
    ] * 2
    assert waiting[0].event_id == waiting[1].event_id, "a redelivery repeats the same decision"

    # P1's request is withdrawn: the bed goes to P2, whose request waited.
    withdrawal = request_withdrawn(holder)
    await stage.send_assessments(withdrawal)
    decisions = await stage.read(SCHEDULING_DECISIONS, caused_by(withdrawal))
    outcome = [d for d in decisions if d.cause_event_id == withdrawal.event_id]
    assert [type(d) for d in outcome] == [BedReserved, BedReservationReleased]
    reserved, released = outcome
    assert (released.patient_id, released.bed, released.reason) == (
        "P1",
        "W2-01",
        "request_withdrawn",
    )
    assert released.withdrawal_reason == "improved"
    assert (reserved.patient_id, reserved.bed, reserved.request_id) == (
        "P2",
        "W2-01",
        waiter.event_id,
    )
    assert await stage.statuses("W2") == {"W2-01": BedStatus.RESERVED}


# --- the handler alone, against real Redis: defects found while writing these tests -----------


async def test_transfer_within_a_ward_moves_the_patient_to_the_new_bed(
    store: RedisBedStore,
) -> None:
    scheduler = Scheduler(store, LAYOUT)
    await scheduler(EVENTS_CLEAN, admitted("P1"))  # W1-01
    transfer = PatientTransferred(
        event_id=uuid4(), patient_id="P1", from_ward="W1", ward="W1", bed="W1-03", **ENVELOPE
    )
    outputs = await scheduler(EVENTS_CLEAN, transfer)
    assert await store.statuses("W1") == {
        "W1-01": BedStatus.DIRTY,
        "W1-02": BedStatus.AVAILABLE,
        "W1-03": BedStatus.OCCUPIED,
    }
    changes = [o.event for o in outputs if isinstance(o.event, BedStatusChanged)]
    assert [(c.bed, c.status) for c in changes] == [
        ("W1-01", BedStatus.DIRTY),
        ("W1-03", BedStatus.OCCUPIED),
    ]
    ids = [o.event.event_id for o in outputs]
    assert len(set(ids)) == len(ids), "the release and the placement have their own ids"


async def test_transfer_to_an_unknown_ward_changes_nothing(store: RedisBedStore) -> None:
    scheduler = Scheduler(store, LAYOUT)
    await scheduler(EVENTS_CLEAN, admitted("P1"))  # W1-01
    transfer = PatientTransferred(
        event_id=uuid4(), patient_id="P1", from_ward="W1", ward="NOWHERE", **ENVELOPE
    )
    with pytest.raises(Rejected):
        await scheduler(EVENTS_CLEAN, transfer)
    assert (await store.statuses("W1"))["W1-01"] == BedStatus.OCCUPIED


async def test_named_bed_admission_of_a_placed_patient_does_not_orphan_a_bed(
    store: RedisBedStore,
) -> None:
    scheduler = Scheduler(store, LAYOUT)
    await scheduler(EVENTS_CLEAN, admitted("P1"))  # W1-01
    await scheduler(EVENTS_CLEAN, admitted("P1", bed="W1-02"))
    await scheduler(EVENTS_CLEAN, discharged("P1"))
    statuses = await store.statuses("W1")
    assert BedStatus.OCCUPIED not in statuses.values(), statuses
