"""Fusion's pure rules: latest readings by event time, oxygen, SpO2 scale, staleness, trends,
idempotency, snapshot ids and settings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from schemas.admissions import PatientAdmitted
from schemas.observations import ArtifactFlag, Spo2ScaleSet, VitalSigns, VitalSignsRecorded
from schemas.vocabulary import Consciousness, VitalParameter
from services.fusion.config import FusionSettings
from services.fusion.domain import (
    FusionPolicy,
    PatientRecord,
    apply,
    handle,
    next_due,
    republish,
    snapshot,
)
from services.fusion.readings import add_point

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = FusionPolicy()


def vitals(
    minutes: float, *, event_id: UUID | None = None, late: bool = False, **values: Any
) -> VitalSignsRecorded:
    when = T0 + timedelta(minutes=minutes)
    return VitalSignsRecorded(
        event_id=event_id or uuid4(),
        occurred_at=when,
        recorded_at=when,
        source="monitor",
        patient_id="P1",
        vitals=VitalSigns(**values),
        late=late,
    )


def fold(events: list[Any]) -> PatientRecord:
    record = PatientRecord(patient_id="P1")
    for event in events:
        record = apply(record, event)
    return record


def shown(record: PatientRecord, minutes: float = 0, policy: FusionPolicy = POLICY) -> Any:
    return snapshot(record, at=T0 + timedelta(minutes=minutes), policy=policy).readings


def test_a_late_observation_never_replaces_a_newer_one_but_fills_a_missing_parameter() -> None:
    record = fold(
        [vitals(10, heart_rate_bpm=88), vitals(0, heart_rate_bpm=140, temperature_celsius=37.2)]
    )
    readings = shown(record, 10)
    assert readings.heart_rate_bpm.value == 88
    assert readings.temperature_celsius.value == 37.2
    assert readings.temperature_celsius.observed_at == T0


def test_an_event_flagged_late_follows_the_same_rule() -> None:
    record = fold(
        [
            vitals(10, spo2_percent=97),
            vitals(0, spo2_percent=90, respiratory_rate_per_min=18, late=True),
        ]
    )
    readings = shown(record, 10)
    assert readings.spo2_percent.value == 97
    assert readings.respiratory_rate_per_min.value == 18


def test_same_instant_resolves_the_same_way_in_any_arrival_order() -> None:
    first = vitals(5, event_id=UUID(int=1), heart_rate_bpm=70)
    second = vitals(5, event_id=UUID(int=2), heart_rate_bpm=75)
    assert fold([first, second]) == fold([second, first])
    assert shown(fold([second, first]), 5).heart_rate_bpm.value == 75


def test_readings_converge_whatever_the_arrival_order() -> None:
    rng = random.Random(7)
    events = [
        vitals(minute, heart_rate_bpm=rng.randint(60, 120), spo2_percent=rng.randint(88, 99))
        for minute in range(0, 90, 3)
    ]
    expected = fold(events)
    for _ in range(20):
        rng.shuffle(events)
        assert fold(events).observations == expected.observations


def test_values_flagged_as_artifacts_are_never_used() -> None:
    event = vitals(0, heart_rate_bpm=0, spo2_percent=97).model_copy(
        update={
            "artifacts": [
                ArtifactFlag(
                    parameter=VitalParameter.HEART_RATE, value=0, unit="/min", reason="flat_line"
                )
            ]
        }
    )
    readings = shown(fold([vitals(-5, heart_rate_bpm=80), event]))
    assert readings.heart_rate_bpm.value == 80
    assert readings.spo2_percent.value == 97


@pytest.mark.parametrize(
    ("values", "on_oxygen"),
    [
        ({"on_supplemental_oxygen": True}, True),
        ({"on_supplemental_oxygen": False}, False),
        ({"oxygen_flow_l_per_min": 2.0}, True),
        ({"oxygen_flow_l_per_min": 0.0}, False),
        ({"fio2_percent": 21.0}, False),
        ({"fio2_percent": 21.5}, True),
        ({"on_supplemental_oxygen": False, "oxygen_flow_l_per_min": 4.0}, True),
        ({"heart_rate_bpm": 80.0}, None),
    ],
    ids=[
        "flag-on",
        "flag-off",
        "flow",
        "no-flow",
        "fio2-room-air",
        "fio2-above-air",
        "flow-beats-air-flag",
        "no-oxygen-information",
    ],
)
def test_supplemental_oxygen_from_flag_flow_or_fio2(
    values: dict[str, Any], on_oxygen: bool | None
) -> None:
    oxygen = shown(fold([vitals(0, **values)])).supplemental_oxygen
    assert (None if oxygen is None else oxygen.on_supplemental_oxygen) == on_oxygen


def test_flow_and_fio2_are_kept_as_readings() -> None:
    readings = shown(fold([vitals(0, oxygen_flow_l_per_min=2.0, fio2_percent=28.0)]))
    assert readings.oxygen_flow_l_per_min.value == 2.0
    assert readings.fio2_percent.value == 28.0


WBC, PACO2 = "white_cell_count_10e9_per_l", "paco2_mmhg"


def test_laboratory_results_are_kept_as_readings_latest_by_event_time() -> None:
    record = fold(
        [
            vitals(0, heart_rate_bpm=80),
            vitals(30, **{WBC: 14.2, PACO2: 30.0}),
            vitals(20, **{WBC: 9.0}),  # reported later, taken earlier: never replaces
            vitals(45, heart_rate_bpm=82),  # a vital sign leaves the labs as they are
        ]
    )
    readings = shown(record, 45)
    assert (readings.white_cell_count_10e9_per_l.value, readings.paco2_mmhg.value) == (14.2, 30.0)
    assert readings.white_cell_count_10e9_per_l.observed_at == T0 + timedelta(minutes=30)
    assert readings.white_cell_count_10e9_per_l.change_1h == pytest.approx(5.2)
    assert readings.supplemental_oxygen is None, "a lab result says nothing about oxygen"


def test_a_late_laboratory_result_fills_a_missing_one() -> None:
    record = fold([vitals(60, **{WBC: 8.0}), vitals(0, paco2_mmhg=41.0, late=True)])
    readings = shown(record, 60)
    assert (readings.white_cell_count_10e9_per_l.value, readings.paco2_mmhg.value) == (8.0, 41.0)


def test_a_laboratory_result_flagged_as_an_artifact_is_never_used() -> None:
    event = vitals(0, **{WBC: 0.0}).model_copy(
        update={
            "artifacts": [
                ArtifactFlag(
                    parameter=VitalParameter.WHITE_CELL_COUNT,
                    value=0,
                    unit="10*9/L",
                    reason="flat_line",
                )
            ]
        }
    )
    assert shown(fold([vitals(-5, **{WBC: 7.5}), event])).white_cell_count_10e9_per_l.value == 7.5


def test_consciousness_is_the_latest_level() -> None:
    record = fold(
        [vitals(5, consciousness=Consciousness.VOICE), vitals(0, consciousness=Consciousness.ALERT)]
    )
    assert shown(record, 5).consciousness.level == Consciousness.VOICE


def scale_set(minutes: float, scale: int) -> Spo2ScaleSet:
    when = T0 + timedelta(minutes=minutes)
    return Spo2ScaleSet(
        event_id=uuid4(),
        occurred_at=when,
        recorded_at=when,
        source="ehr",
        patient_id="P1",
        scale=scale,
    )


def test_spo2_scale_is_1_until_set_and_then_the_latest_set_by_event_time() -> None:
    def scale_of(events: list[Any]) -> int:
        return snapshot(fold(events), at=T0, policy=POLICY).spo2_scale

    assert scale_of([vitals(0, spo2_percent=90)]) == 1
    assert scale_of([scale_set(10, 2), scale_set(5, 1)]) == 2
    assert scale_of([scale_set(10, 2), scale_set(20, 1)]) == 1


@pytest.mark.parametrize(
    ("parameter", "values", "age_seconds", "stale"),
    [
        ("heart_rate_bpm", {"heart_rate_bpm": 80}, 900, False),
        ("heart_rate_bpm", {"heart_rate_bpm": 80}, 901, True),
        ("spo2_percent", {"spo2_percent": 97}, 901, True),
        ("respiratory_rate_per_min", {"respiratory_rate_per_min": 16}, 901, True),
        ("systolic_bp_mmhg", {"systolic_bp_mmhg": 120}, 43_200, False),
        ("systolic_bp_mmhg", {"systolic_bp_mmhg": 120}, 43_201, True),
        ("temperature_celsius", {"temperature_celsius": 37.0}, 43_201, True),
        ("consciousness", {"consciousness": Consciousness.ALERT}, 43_200, False),
        ("consciousness", {"consciousness": Consciousness.ALERT}, 43_201, True),
        ("supplemental_oxygen", {"on_supplemental_oxygen": False}, 43_201, True),
        (WBC, {WBC: 14.2}, 43_201, False),  # a blood count stays usable for a day
        (WBC, {WBC: 14.2}, 86_400, False),
        (WBC, {WBC: 14.2}, 86_401, True),
        (PACO2, {PACO2: 30.0}, 21_600, False),  # a blood gas for 6 hours
        (PACO2, {PACO2: 30.0}, 21_601, True),
    ],
)
def test_readings_older_than_their_maximum_age_are_marked_stale(
    parameter: str, values: dict[str, Any], age_seconds: int, stale: bool
) -> None:
    readings = shown(fold([vitals(0, **values)]), age_seconds / 60)
    assert getattr(readings, parameter).stale is stale


def test_maximum_ages_are_configurable_per_parameter() -> None:
    policy = FusionPolicy(max_age_seconds={"heart_rate_bpm": 60})
    readings = shown(fold([vitals(0, heart_rate_bpm=80, spo2_percent=97)]), 2, policy)
    assert readings.heart_rate_bpm.stale and not readings.spo2_percent.stale


def test_change_over_the_last_hour() -> None:
    series = [vitals(minute, heart_rate_bpm=70 + minute) for minute in range(0, 91)]
    readings = shown(fold(series), 90)
    # latest 160 at minute 90; the oldest point kept within the hour before it is at minute 30
    assert readings.heart_rate_bpm.value == 160
    assert readings.heart_rate_bpm.change_1h == 60


def test_change_over_the_last_hour_is_none_without_an_older_reading() -> None:
    assert shown(fold([vitals(0, heart_rate_bpm=70)])).heart_rate_bpm.change_1h is None
    far_apart = fold([vitals(0, heart_rate_bpm=70), vitals(61, heart_rate_bpm=90)])
    assert shown(far_apart, 61).heart_rate_bpm.change_1h is None


def test_a_late_reading_within_the_hour_counts_for_the_trend() -> None:
    record = fold([vitals(50, temperature_celsius=38.4), vitals(10, temperature_celsius=37.0)])
    assert shown(record, 50).temperature_celsius.change_1h == pytest.approx(1.4)


def test_history_is_thinned_to_a_few_points_per_hour() -> None:
    record = fold([vitals(second / 60, heart_rate_bpm=80) for second in range(0, 7200, 5)])
    assert len(record.observations.numeric["heart_rate_bpm"].history) <= 14


def test_replaying_every_event_changes_nothing_and_bumps_no_version() -> None:
    events = [
        PatientAdmitted(
            event_id=uuid4(),
            occurred_at=T0,
            recorded_at=T0,
            source="ehr",
            patient_id="P1",
            ward="W1",
        ),
        *[vitals(m, heart_rate_bpm=70 + m, spo2_percent=96) for m in range(10)],
        scale_set(3, 2),
    ]
    record = None
    for event in events:
        record = handle(
            record, event, now=T0 + timedelta(minutes=10), partition=1, policy=POLICY
        ).record
    assert record is not None and record.version == 12
    for event in events:
        outcome = handle(record, event, now=T0 + timedelta(minutes=11), partition=1, policy=POLICY)
        assert not outcome.changed and outcome.snapshot is None and outcome.record is record


def test_an_event_that_tells_nothing_about_an_unknown_patient_stores_nothing() -> None:
    outcome = handle(
        None,
        vitals(0, heart_rate_bpm=80).model_copy(update={"vitals": VitalSigns()}),
        now=T0,
        partition=0,
        policy=POLICY,
    )
    assert not outcome.changed and outcome.snapshot is None


def test_snapshot_ids_are_deterministic_and_tell_staleness_apart() -> None:
    record = fold([vitals(0, heart_rate_bpm=80)])
    fresh = snapshot(record, at=T0, policy=POLICY)
    assert snapshot(record, at=T0 + timedelta(minutes=1), policy=POLICY).event_id == fresh.event_id
    stale = snapshot(record, at=T0 + timedelta(hours=1), policy=POLICY)
    assert stale.version == fresh.version and stale.event_id != fresh.event_id


def test_republish_gives_back_the_last_emitted_snapshot_exactly() -> None:
    outcome = handle(None, vitals(0, heart_rate_bpm=80), now=T0, partition=0, policy=POLICY)
    assert outcome.snapshot is not None
    assert republish(outcome.record, POLICY) == outcome.snapshot


def test_next_due_is_the_end_of_the_interval_or_the_first_reading_to_turn_stale() -> None:
    first = handle(
        None, vitals(0, heart_rate_bpm=80, systolic_bp_mmhg=120), now=T0, partition=0, policy=POLICY
    )
    assert next_due(first.record, POLICY) == T0 + timedelta(seconds=900)
    pending = handle(
        first.record,
        vitals(0.1, heart_rate_bpm=81),
        now=T0 + timedelta(seconds=6),
        partition=0,
        policy=POLICY,
    )
    assert pending.snapshot is None and pending.record.throttle.pending
    assert next_due(pending.record, POLICY) == T0 + timedelta(seconds=60)


def test_next_due_includes_a_laboratory_result_turning_stale() -> None:
    first = handle(None, vitals(0, **{PACO2: 30.0, WBC: 14.2}), now=T0, partition=0, policy=POLICY)
    assert first.snapshot is not None
    assert next_due(first.record, POLICY) == T0 + timedelta(hours=6)
    later = snapshot(first.record, at=T0 + timedelta(hours=6, seconds=1), policy=POLICY)
    assert (later.readings.paco2_mmhg.stale, later.readings.white_cell_count_10e9_per_l.stale) == (
        True,
        False,
    )


def test_settings_take_maximum_ages_as_json_and_keep_the_other_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WARDFLOW_MAX_AGE_SECONDS", '{"heart_rate_bpm": 300}')
    monkeypatch.setenv("WARDFLOW_MIN_SNAPSHOT_INTERVAL_SECONDS", "30")
    policy = FusionSettings().policy()
    assert policy.max_age_seconds["heart_rate_bpm"] == 300
    assert policy.max_age_seconds["temperature_celsius"] == 43_200
    assert (policy.max_age_seconds[WBC], policy.max_age_seconds[PACO2]) == (86_400, 21_600)
    assert policy.min_snapshot_interval_seconds == 30


def test_settings_take_maximum_ages_of_laboratory_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WARDFLOW_MAX_AGE_SECONDS", '{"paco2_mmhg": 3600}')
    policy = FusionSettings().policy()
    assert (policy.max_age_seconds[WBC], policy.max_age_seconds[PACO2]) == (86_400, 3600)
    readings = shown(fold([vitals(0, **{WBC: 14.2, PACO2: 30.0})]), 61, policy)
    assert (readings.white_cell_count_10e9_per_l.stale, readings.paco2_mmhg.stale) == (False, True)


def test_settings_refuse_an_unknown_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARDFLOW_MAX_AGE_SECONDS", '{"pulse": 300}')
    with pytest.raises(ValidationError, match="unknown parameters"):
        FusionSettings()


def reference_add_point(
    history: tuple[Any, ...], latest_second: int, point: Any
) -> tuple[Any, ...]:
    """The definition `add_point` keeps: one point per 5-minute bucket (the earliest), the last
    hour before `latest_second`, sorted."""
    first = (latest_second - 3600) // 300
    kept = {p[0] // 300: p for p in history if p[0] // 300 >= first}
    bucket = point[0] // 300
    if bucket >= first and (bucket not in kept or point < kept[bucket]):
        kept[bucket] = point
    return tuple(sorted(kept.values()))


@pytest.mark.parametrize("seed", range(20))
def test_the_in_order_shortcut_of_add_point_gives_the_defined_history(seed: int) -> None:
    rng = random.Random(seed)
    history: tuple[Any, ...] = ()
    latest = 1_000_000
    for _ in range(300):
        second = latest + rng.randint(-900, 240)  # mostly in order, some late, some equal
        point = (second, float(rng.randint(50, 60)))
        latest = max(latest, second)
        expected = reference_add_point(history, latest, point)
        history = add_point(history, latest, point)
        assert history == expected
