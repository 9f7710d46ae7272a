"""The ADT fold: event-time order, cancels, duplicates, and convergence under any arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any
from uuid import uuid4

import pytest

from schemas.admissions import (
    AdmissionCancelled,
    DischargeCancelled,
    PatientAdmitted,
    PatientDischarged,
    PatientRegistered,
    PatientTransferred,
    PatientUpdated,
    TransferCancelled,
)
from services.fusion.adt import MAX_ENTRIES, AdtLog, AdtState, Location, record_adt

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def at(minutes: int) -> dict[str, Any]:
    when = T0 + timedelta(minutes=minutes)
    return {
        "event_id": uuid4(),
        "occurred_at": when,
        "recorded_at": when,
        "source": "ehr",
        "patient_id": "P1",
    }


def fold(events: Any) -> AdtLog:
    log = AdtLog()
    for event in events:
        log = record_adt(log, event)
    return log


def state(status: str = "unknown", ward: str | None = None, bed: str | None = None) -> Location:
    return Location(status=status, ward=ward, bed=bed)  # type: ignore[arg-type]


def location(log: AdtLog) -> Location:
    s = log.state
    return Location(status=s.status, ward=s.ward, bed=s.bed)


TRANSFERS_WITH_CANCELS = (
    PatientAdmitted(**at(0), ward="W1", bed="B1"),
    PatientTransferred(**at(60), from_ward="W1", from_bed="B1", ward="W2", bed="B5"),
    PatientTransferred(**at(120), from_ward="W2", from_bed="B5", ward="W3", bed="B7"),
    TransferCancelled(**at(125), ward="W2", bed="B5", cancelled_ward="W3", cancelled_bed="B7"),
    PatientDischarged(**at(600), ward="W2"),
    DischargeCancelled(**at(610), ward="W2", bed="B5"),
)
ADMISSION_CANCELLED_FROM_EMERGENCY = (
    PatientRegistered(**at(0), ward="ED"),
    PatientAdmitted(**at(30), ward="W1", bed="B2"),
    AdmissionCancelled(**at(35), ward="W1", bed="B2"),
    PatientAdmitted(**at(90), ward="W4", bed="B1"),
    PatientTransferred(**at(300), from_ward="W4", from_bed="B1", ward="W5", bed="B3"),
    PatientDischarged(**at(900), ward="W5"),
)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (TRANSFERS_WITH_CANCELS, state("in_progress", "W2", "B5")),
        (ADMISSION_CANCELLED_FROM_EMERGENCY, state("finished", "W5")),
    ],
    ids=["transfer-and-discharge-cancelled", "admission-cancelled"],
)
def test_every_arrival_order_converges_to_the_event_time_state(
    events: tuple[Any, ...], expected: Location
) -> None:
    in_order = fold(events)
    assert location(in_order) == expected
    finals = {fold(order) for order in permutations(events)}
    assert finals == {in_order}, "some arrival order gave another state or log"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([PatientAdmitted(**at(0), ward="W1")], state("in_progress", "W1")),
        ([PatientRegistered(**at(0), ward="ED")], state("in_progress", "ED")),
        ([PatientRegistered(**at(0))], state("in_progress")),
        (
            [PatientAdmitted(**at(0), ward="W1", bed="B1"), PatientRegistered(**at(5))],
            state("in_progress", "W1", "B1"),
        ),
        (
            [PatientAdmitted(**at(0), ward="W1", bed="B1"), PatientDischarged(**at(9), ward="W1")],
            state("finished", "W1"),
        ),
        (
            [PatientAdmitted(**at(0), ward="W1", bed="B1"), PatientUpdated(**at(5), bed="B9")],
            state("in_progress", "W1", "B9"),
        ),
        (
            [PatientAdmitted(**at(0), ward="W1", bed="B1"), PatientUpdated(**at(5), ward="W2")],
            state("in_progress", "W2"),
        ),
        (
            [
                PatientAdmitted(**at(0), ward="W1", bed="B1"),
                PatientUpdated(**at(5), cleared=["bed"]),
            ],
            state("in_progress", "W1"),
        ),
        (
            [PatientAdmitted(**at(0), ward="W1", bed="B1"), PatientUpdated(**at(5))],
            state("in_progress", "W1", "B1"),
        ),
        (
            [
                PatientAdmitted(**at(0), ward="W1", bed="B1"),
                AdmissionCancelled(**at(5), ward="W1", bed="B1"),
            ],
            state(),
        ),
        ([AdmissionCancelled(**at(5), ward="W1", bed="B1")], state()),
        (
            [
                PatientAdmitted(**at(0), ward="W1", bed="B1"),
                PatientTransferred(**at(5), from_ward="W1", from_bed="B1", ward="W2", bed="B2"),
                TransferCancelled(
                    **at(6), ward="W1", bed="B1", cancelled_ward="W2", cancelled_bed="B2"
                ),
            ],
            state("in_progress", "W1", "B1"),
        ),
        (
            [
                PatientAdmitted(**at(0), ward="W1", bed="B1"),
                PatientDischarged(**at(5), ward="W1"),
                DischargeCancelled(**at(6), ward="W1", bed="B1"),
            ],
            state("in_progress", "W1", "B1"),
        ),
    ],
    ids=[
        "admit-without-bed",
        "register-emergency",
        "register-without-ward",
        "registration-during-stay-keeps-bed",
        "discharge-keeps-ward-left-clears-bed",
        "update-sets-bed",
        "update-new-ward-clears-bed",
        "update-clears-bed",
        "update-with-nothing-changes-nothing",
        "admission-cancel-without-registration",
        "admission-cancel-of-unknown-admission",
        "transfer-cancel-back-to-previous-bed",
        "discharge-cancel-back-in-bed",
    ],
)
def test_each_adt_event_in_event_time_order(events: list[Any], expected: Location) -> None:
    assert location(fold(events)) == expected


def test_admission_cancel_goes_back_to_the_emergency_registration() -> None:
    log = fold(ADMISSION_CANCELLED_FROM_EMERGENCY[:3])
    assert location(log) == state("in_progress", "ED")


def test_a_later_admission_wins_over_an_earlier_one_that_arrives_late() -> None:
    late = PatientAdmitted(**at(0), ward="W1", bed="B1")
    newer = PatientTransferred(**at(10), from_ward="W1", ward="W2", bed="B4")
    assert location(fold([newer, late])) == state("in_progress", "W2", "B4")


def test_a_duplicate_event_changes_nothing() -> None:
    admitted = PatientAdmitted(**at(0), ward="W1", bed="B1")
    log = fold([admitted])
    assert record_adt(log, admitted) is log
    assert record_adt(log, admitted.model_copy(update={"ward": "W9"})) is log  # same event_id


def test_a_full_log_folds_its_oldest_entries_into_the_base() -> None:
    events = [PatientAdmitted(**at(0), ward="W0", bed="B0")] + [
        PatientTransferred(**at(i), from_ward=f"W{i - 1}", ward=f"W{i}", bed=f"B{i}")
        for i in range(1, MAX_ENTRIES + 10)
    ]
    log = fold(events)
    assert len(log.entries) == MAX_ENTRIES
    assert location(log) == state("in_progress", f"W{MAX_ENTRIES + 9}", f"B{MAX_ENTRIES + 9}")
    assert log.base.ward == "W9"
    too_old = PatientUpdated(**at(-5), ward="W-OLD")
    assert record_adt(log, too_old) is log, "an event older than the whole log must be ignored"
    assert record_adt(log, events[0]) is log, "a dropped duplicate must not come back"


def test_state_keeps_what_an_admission_cancel_needs() -> None:
    log = fold(ADMISSION_CANCELLED_FROM_EMERGENCY[:2])
    assert log.state == AdtState(
        status="in_progress", ward="W1", bed="B2", before_admission=state("in_progress", "ED")
    )
