"""Fusion's care plan: clinicians' instructions folded by event time into the patient's record,
idempotent and order-safe, carried by every snapshot, and sent at once when it changes."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from schemas.care import (
    CARE_EVENTS,
    AlertAcknowledged,
    CarePlan,
    CeilingOfCareSet,
    ParameterOverrideCleared,
    ParameterOverrideSet,
    SuspectedInfectionSet,
)
from schemas.observations import VitalSigns, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN
from services.fusion.app import CLINICAL_EVENTS
from services.fusion.care import CARE_EVENT_TYPES, CareRecord, digest, fold, plan
from services.fusion.domain import (
    FusionPolicy,
    Outcome,
    PatientRecord,
    apply,
    flush,
    handle,
    republish,
    snapshot,
)

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = FusionPolicy()
ROLE = "registered nurse"


def envelope(minutes: float, event_id: UUID | None = None) -> dict[str, Any]:
    when = T0 + timedelta(minutes=minutes)
    return {
        "event_id": event_id or uuid4(),
        "occurred_at": when,
        "recorded_at": when,
        "source": "ehr",
        "patient_id": "P1",
    }


def ceiling(minutes: float, level: str, role: str = "ICU consultant", **kw: Any) -> Any:
    return CeilingOfCareSet(**envelope(minutes, **kw), ceiling=level, set_by_role=role)


def infection(minutes: float, suspected: bool, **kw: Any) -> SuspectedInfectionSet:
    return SuspectedInfectionSet(**envelope(minutes, **kw), suspected=suspected, set_by_role=ROLE)


def override(
    minutes: float,
    parameter: str = "spo2_percent",
    low: float = 88,
    high: float = 92,
    lasts: timedelta = timedelta(days=2),
    **kw: Any,
) -> ParameterOverrideSet:
    at = T0 + timedelta(minutes=minutes)
    return ParameterOverrideSet(
        **envelope(minutes, **kw),
        parameter=parameter,
        low=low,
        high=high,
        expires_at=at + lasts,
        set_by_role="respiratory consultant",
    )


def cleared(minutes: float, parameter: str = "spo2_percent", **kw: Any) -> Any:
    return ParameterOverrideCleared(
        **envelope(minutes, **kw), parameter=parameter, set_by_role=ROLE
    )


def acknowledged(minutes: float, assessment: UUID | None = None, **kw: Any) -> AlertAcknowledged:
    return AlertAcknowledged(
        **envelope(minutes, **kw), assessment_id=assessment, acknowledged_by_role=ROLE
    )


def vitals(minutes: float, **values: Any) -> VitalSignsRecorded:
    return VitalSignsRecorded(
        **envelope(minutes) | {"source": "monitor"}, vitals=VitalSigns(**values)
    )


def fold_all(events: list[Any]) -> PatientRecord:
    record = PatientRecord(patient_id="P1")
    for event in events:
        record = apply(record, event)
    return record


def care_of(events: list[Any]) -> CarePlan:
    return snapshot(fold_all(events), at=T0, policy=POLICY).care


class Patient:
    """One patient's events through the domain, as the app feeds them, at a test clock."""

    def __init__(self) -> None:
        self.record: PatientRecord | None = None

    def send(self, event: Any, second: float) -> Outcome:
        outcome = handle(
            self.record, event, now=T0 + timedelta(seconds=second), partition=0, policy=POLICY
        )
        self.record = outcome.record
        return outcome


# --- each instruction ---------------------------------------------------------------------------


def test_without_instructions_the_plan_is_the_default() -> None:
    assert care_of([vitals(0, heart_rate_bpm=80)]) == CarePlan()
    assert CarePlan().ceiling == "icu" and not CarePlan().suspected_infection


def test_the_ceiling_of_care_is_the_latest_set_by_event_time_with_its_role() -> None:
    care = care_of([ceiling(10, "general", "ward registrar"), ceiling(5, "hdu")])
    assert (care.ceiling, care.ceiling_set_by_role) == ("general", "ward registrar")
    care = care_of([ceiling(10, "general"), ceiling(20, "icu", "ICU consultant")])
    assert (care.ceiling, care.ceiling_set_by_role) == ("icu", "ICU consultant")


def test_suspected_infection_is_the_latest_by_event_time() -> None:
    assert care_of([infection(0, True)]).suspected_infection is True
    assert care_of([infection(10, False), infection(5, True)]).suspected_infection is False
    assert care_of([infection(5, False), infection(10, True)]).suspected_infection is True


def test_an_override_is_kept_per_parameter_with_its_range_expiry_and_role() -> None:
    spo2 = override(0, "spo2_percent", 88, 92)
    rr = override(1, "respiratory_rate_per_min", 22, 26, lasts=timedelta(hours=12))
    care = care_of([rr, spo2])
    assert [o.parameter for o in care.overrides] == ["respiratory_rate_per_min", "spo2_percent"]
    first = care.overrides[1]
    assert (first.low, first.high, first.expires_at) == (88, 92, spo2.expires_at)
    assert (first.set_by_role, first.set_at) == ("respiratory consultant", spo2.occurred_at)


def test_a_newer_override_of_the_same_parameter_replaces_the_older() -> None:
    care = care_of([override(10, low=85, high=90), override(5, low=88, high=92)])
    assert [(o.low, o.high) for o in care.overrides] == [(85, 90)]


def test_the_latest_acknowledgement_names_its_alert_and_role() -> None:
    alert = uuid4()
    care = care_of([acknowledged(10, alert), acknowledged(5)])
    assert care.acknowledgement is not None
    assert care.acknowledgement.assessment_id == alert
    assert care.acknowledgement.acknowledged_at == T0 + timedelta(minutes=10)
    assert care.acknowledgement.acknowledged_by_role == ROLE
    later = care_of([acknowledged(10, alert), acknowledged(15)]).acknowledgement
    assert later is not None and later.assessment_id is None


# --- clear against set -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "in_force"),
    [
        ([override(0), cleared(5)], False),
        ([cleared(5), override(0)], False),  # the older set arrives late: stays cleared
        ([cleared(0), override(5)], True),  # set again after the clear
        ([override(5), cleared(0)], True),  # an older clear does not remove a newer set
        ([override(0, "heart_rate_bpm"), cleared(5)], True),  # another parameter's clear
        ([cleared(5)], False),
    ],
    ids=["set-clear", "clear-late-set", "clear-set", "set-late-clear", "other", "clear-only"],
)
def test_a_clear_removes_an_override_only_if_it_is_newer(events: list[Any], in_force: bool) -> None:
    assert bool(care_of(events).overrides) is in_force


def test_a_clear_of_the_same_instant_is_ordered_by_event_id() -> None:
    set_first = [override(5, event_id=UUID(int=1)), cleared(5, event_id=UUID(int=2))]
    clear_first = [override(5, event_id=UUID(int=2)), cleared(5, event_id=UUID(int=1))]
    for events in (set_first, clear_first):
        assert care_of(events) == care_of(events[::-1])
    assert not care_of(set_first).overrides and care_of(clear_first).overrides


# --- expiry -------------------------------------------------------------------------------------


def test_an_expired_override_stays_in_the_plan_for_a_day_for_diagnosis_to_judge() -> None:
    short = override(0, lasts=timedelta(hours=1))
    later = infection(60 + 23 * 60, True)  # 23 h after the override expired
    assert [o.expires_at for o in care_of([short, later]).overrides] == [short.expires_at]


def test_an_override_expired_more_than_a_day_ago_is_dropped_when_folding() -> None:
    short = override(0, lasts=timedelta(hours=1))
    much_later = infection(60 + 25 * 60, True)
    assert care_of([short, much_later]).overrides == []
    assert care_of([much_later, short]).overrides == [], "and is not taken when it comes late"
    record = fold_all([short, much_later])
    assert fold_all([short, much_later, short]) == record


def test_an_override_dropped_on_expiry_does_not_let_an_older_one_back() -> None:
    long = override(0, low=80, high=85, lasts=timedelta(days=7))
    short = override(10, low=88, high=92, lasts=timedelta(hours=1))
    much_later = infection(2 * 24 * 60, True)  # short expired > 1 day ago, long still in force
    expected = care_of([long, short, much_later])
    assert expected.overrides == []
    for order in itertools.permutations([long, short, much_later]):
        assert care_of(list(order)) == expected


def test_old_instructions_do_not_accumulate() -> None:
    events = [override(0), cleared(10), infection(30 * 24 * 60, False)]
    record = fold_all(events)
    assert record.care.overrides == {}, "a clear long past is forgotten"
    assert fold_all([events[2], *events[:2]]).care == record.care


# --- order, redelivery, version ----------------------------------------------------------------


def mixed_care_stream(rng: random.Random) -> list[Any]:
    parameters = ["spo2_percent", "heart_rate_bpm", "respiratory_rate_per_min"]
    events: list[Any] = []
    for minute in range(0, 600, 7):
        choice = rng.randrange(5)
        parameter = rng.choice(parameters)
        if choice == 0:
            events.append(ceiling(minute, rng.choice(["general", "hdu", "icu"])))
        elif choice == 1:
            events.append(infection(minute, rng.random() < 0.5))
        elif choice == 2:
            low = rng.randint(80, 90)
            lasts = timedelta(minutes=rng.randint(30, 600))
            events.append(override(minute, parameter, low, low + 5, lasts))
        elif choice == 3:
            events.append(cleared(minute, parameter))
        else:
            events.append(acknowledged(minute, rng.choice([None, uuid4()])))
    return events


def test_the_plan_converges_whatever_the_arrival_order() -> None:
    rng = random.Random(11)
    events = mixed_care_stream(rng)
    expected = fold_all(events)
    assert expected.care.overrides, "the stream leaves overrides to compare"
    for _ in range(25):
        rng.shuffle(events)
        shuffled = fold_all(events)
        assert shuffled.care == expected.care
        assert plan(shuffled.care) == plan(expected.care)


@pytest.mark.parametrize(
    "event",
    [ceiling(0, "hdu"), infection(0, True), override(0), cleared(0), acknowledged(0, uuid4())],
    ids=lambda event: event.kind,
)
def test_a_redelivered_event_changes_nothing_and_never_bumps_the_version(event: Any) -> None:
    patient = Patient()
    patient.send(override(-5), 0)
    assert patient.send(event, 1).snapshot is not None
    record = patient.record
    assert record is not None and apply(record, event) is record
    outcome = patient.send(event, 2)
    assert not outcome.changed and outcome.snapshot is None
    assert outcome.record.version == record.version == 2


def test_every_change_of_the_plan_bumps_the_version_once() -> None:
    record = fold_all([ceiling(0, "hdu")])
    assert record.version == 1
    assert apply(record, ceiling(-5, "general")) is record, "older: nothing to change"
    assert apply(record, ceiling(5, "general")).version == 2


def test_an_instruction_that_leaves_the_plan_as_it_is_does_not_bump_the_version() -> None:
    record = fold_all([cleared(0)])  # a clear with no override: kept, against late sets
    assert record.version == 0 and record.care.overrides
    assert plan(record.care) == CarePlan()
    assert apply(record, override(-5)).care == record.care


def test_a_care_event_for_an_unknown_patient_starts_a_record_and_a_snapshot() -> None:
    outcome = handle(None, infection(0, True), now=T0, partition=1, policy=POLICY)
    assert outcome.changed and outcome.trigger == "change"
    assert outcome.snapshot is not None and outcome.snapshot.care.suspected_infection
    assert outcome.record.partition == 1


# --- snapshots ----------------------------------------------------------------------------------


def test_the_snapshot_carries_the_care_plan() -> None:
    alert = uuid4()
    events = [
        ceiling(0, "hdu", "ICU consultant"),
        infection(1, True),
        override(2, "systolic_bp_mmhg", 85, 100),
        acknowledged(3, alert),
        vitals(4, heart_rate_bpm=80),
    ]
    state = snapshot(fold_all(events), at=T0 + timedelta(minutes=5), policy=POLICY)
    assert state.care.ceiling == "hdu" and state.care.ceiling_set_by_role == "ICU consultant"
    assert state.care.suspected_infection
    assert [(o.parameter, o.low, o.high) for o in state.care.overrides] == [
        ("systolic_bp_mmhg", 85, 100)
    ]
    assert state.care.acknowledgement is not None
    assert state.care.acknowledgement.assessment_id == alert
    decoded = type(state).model_validate_json(state.model_dump_json())
    assert decoded.care == state.care, "the plan survives the topic's JSON"


@pytest.mark.parametrize(
    "change",
    [
        ceiling(1, "general"),
        infection(1, True),
        override(1),
        acknowledged(1),
        cleared(1, "heart_rate_bpm"),
    ],
    ids=lambda event: event.kind,
)
def test_a_change_of_the_plan_goes_out_at_once_not_after_the_interval(change: Any) -> None:
    patient = Patient()
    patient.send(override(0, "heart_rate_bpm", 100, 120), 0)
    assert patient.send(vitals(0, heart_rate_bpm=80), 1).trigger == "change"
    assert patient.send(vitals(0.05, heart_rate_bpm=81), 2).snapshot is None, "throttled"
    outcome = patient.send(change, 3)  # well inside the 60 s interval
    assert outcome.trigger == "change" and outcome.snapshot is not None
    assert outcome.snapshot.care == plan(outcome.record.care)
    assert outcome.snapshot.readings.heart_rate_bpm is not None
    assert outcome.snapshot.readings.heart_rate_bpm.value == 81, "pending readings go out too"


def test_a_snapshot_sent_again_on_takeover_carries_the_same_plan() -> None:
    patient = Patient()
    patient.send(ceiling(0, "general"), 0)
    assert patient.record is not None
    again = republish(patient.record, POLICY)
    assert again is not None and again.care.ceiling == "general"
    assert flush(patient.record, T0 + timedelta(hours=1), POLICY).snapshot is None


def test_the_digest_is_empty_without_instructions_and_changes_with_the_plan() -> None:
    assert digest(CareRecord()) == ""
    one = fold(CareRecord(), ceiling(0, "hdu"))
    two = fold(one, ceiling(1, "general"))
    assert digest(one) and digest(two) and digest(one) != digest(two)
    assert digest(fold(CareRecord(), cleared(0))) == "", "a clear of nothing is no instruction"


# --- wiring ------------------------------------------------------------------------------------


def test_fusion_folds_every_care_event_of_the_contract() -> None:
    assert set(CARE_EVENT_TYPES) == set(CARE_EVENTS)
    assert {event.__name__ for event in CARE_EVENTS} <= set(CLINICAL_EVENTS)
    patient_events = {
        event.__name__ for event in EVENTS_CLEAN.events if "patient_id" in event.model_fields
    }
    assert patient_events == set(CLINICAL_EVENTS), "every patient event on events.clean is fused"
