"""Output throttling: scoring bands at every threshold, when a snapshot goes out, and how many."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from schemas.admissions import PatientAdmitted
from schemas.observations import VitalSigns, VitalSignsRecorded
from schemas.vocabulary import Consciousness
from services.fusion.domain import FusionPolicy, Outcome, PatientRecord, flush, handle
from services.fusion.throttle import (
    Signature,
    consciousness_severity,
    must_emit_now,
    numeric_severity,
    spo2_severity,
)
from services.simulator.physiology import Course, draw_baseline, observe

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
POLICY = FusionPolicy(min_snapshot_interval_seconds=60)


@pytest.mark.parametrize(
    ("parameter", "below", "above"),
    [
        ("respiratory_rate_per_min", 8, 9),
        ("respiratory_rate_per_min", 11, 12),
        ("respiratory_rate_per_min", 20, 21),  # NEWS2 and SIRS
        ("respiratory_rate_per_min", 21.9, 22),  # qSOFA
        ("respiratory_rate_per_min", 24, 25),
        ("heart_rate_bpm", 40, 41),
        ("heart_rate_bpm", 50, 51),
        ("heart_rate_bpm", 90, 91),
        ("heart_rate_bpm", 110, 111),
        ("heart_rate_bpm", 130, 131),
        ("systolic_bp_mmhg", 90, 91),
        ("systolic_bp_mmhg", 100, 101),
        ("systolic_bp_mmhg", 110, 111),
        ("systolic_bp_mmhg", 219, 220),
        ("temperature_celsius", 35.0, 35.1),
        ("temperature_celsius", 35.9, 36.0),  # SIRS below 36
        ("temperature_celsius", 36.0, 36.1),
        ("temperature_celsius", 38.0, 38.1),
        ("temperature_celsius", 39.0, 39.1),
        ("white_cell_count_10e9_per_l", 3.99, 4.0),  # SIRS below 4
        ("white_cell_count_10e9_per_l", 12.0, 12.01),  # SIRS above 12
        ("paco2_mmhg", 31.99, 32.0),  # SIRS below 32
    ],
)
def test_each_scoring_threshold_is_a_band_edge(parameter: str, below: float, above: float) -> None:
    assert numeric_severity(parameter, below) != numeric_severity(parameter, above)


@pytest.mark.parametrize(
    ("parameter", "values"),
    [
        ("respiratory_rate_per_min", (12, 16, 20)),
        ("heart_rate_bpm", (51, 70, 90)),
        ("systolic_bp_mmhg", (111, 150, 219)),
        ("temperature_celsius", (36.1, 37.0, 38.0)),
        ("diastolic_bp_mmhg", (40, 80, 120)),
        ("white_cell_count_10e9_per_l", (4.0, 8.0, 12.0)),
        ("paco2_mmhg", (32.0, 40.0, 80.0)),  # high PaCO2 is no SIRS criterion
    ],
)
def test_values_within_the_normal_band_have_no_severity(
    parameter: str, values: tuple[float, ...]
) -> None:
    assert {numeric_severity(parameter, v) for v in values} == {0}


@pytest.mark.parametrize(
    ("percent", "scale", "on_oxygen", "severity"),
    [
        (96, 1, False, 0),
        (95, 1, False, 1),
        (93, 1, False, 2),
        (91, 1, False, 3),
        (99, 2, False, 0),  # scale 2: >= 93 on air scores 0
        (88, 2, True, 0),
        (92, 2, True, 0),
        (93, 2, True, 1),
        (97, 2, True, 3),
        (87, 2, False, 1),
        (83, 2, False, 3),
    ],
)
def test_spo2_bands_follow_the_patients_scale(
    percent: float, scale: int, on_oxygen: bool, severity: int
) -> None:
    assert spo2_severity(percent, scale, on_oxygen) == severity


def test_any_level_below_alert_is_worse_than_alert() -> None:
    alert = consciousness_severity(Consciousness.ALERT)
    assert all(consciousness_severity(level) > alert for level in Consciousness if level != "A")


@pytest.mark.parametrize(
    ("last", "current", "now"),
    [
        (None, {"hr": 0}, True),
        ({"hr": 0}, {"hr": 0}, False),
        ({"hr": 0}, {"hr": 1}, True),
        ({"hr": 1}, {"hr": 0}, False),
        ({"hr": 0}, {"hr": 0, "rr": 0}, True),
        ({"hr": 0, "rr": 0}, {"hr": 0}, True),
    ],
    ids=["first", "same", "worse", "better", "appears", "disappears-or-stale"],
)
def test_when_a_signature_change_needs_a_snapshot_at_once(
    last: dict[str, int] | None, current: dict[str, int], now: bool
) -> None:
    before = None if last is None else Signature(location="x", severities=last)
    assert must_emit_now(before, Signature(location="x", severities=current)) is now


def test_a_location_change_needs_a_snapshot_at_once() -> None:
    assert must_emit_now(
        Signature(location="in_progress|W1|B1|1", severities={}),
        Signature(location="in_progress|W2|B1|1", severities={}),
    )


def vitals(second: float, **values: Any) -> VitalSignsRecorded:
    when = T0 + timedelta(seconds=second)
    return VitalSignsRecorded(
        event_id=uuid4(),
        occurred_at=when,
        recorded_at=when,
        source="monitor",
        patient_id="P1",
        vitals=VitalSigns(**values),
    )


class Patient:
    """Feeds one patient's events through the domain, as the app does, at a test clock."""

    def __init__(self) -> None:
        self.record: PatientRecord | None = None
        self.snapshots: list[Any] = []

    def send(self, event: Any, second: float) -> Outcome:
        outcome = handle(
            self.record, event, now=T0 + timedelta(seconds=second), partition=0, policy=POLICY
        )
        return self.keep(outcome)

    def tick(self, second: float) -> Outcome:
        assert self.record is not None
        return self.keep(flush(self.record, T0 + timedelta(seconds=second), POLICY))

    def keep(self, outcome: Outcome) -> Outcome:
        if outcome.changed:
            self.record = outcome.record
        if outcome.snapshot is not None:
            self.snapshots.append(outcome.snapshot)
        return outcome


def test_a_change_within_the_band_waits_for_the_interval() -> None:
    patient = Patient()
    assert patient.send(vitals(0, heart_rate_bpm=70), 0).trigger == "change"
    assert patient.send(vitals(1, heart_rate_bpm=72), 1).snapshot is None
    assert patient.tick(59).snapshot is None
    flushed = patient.tick(60)
    assert flushed.trigger == "interval"
    assert flushed.snapshot is not None and flushed.snapshot.readings.heart_rate_bpm.value == 72
    assert patient.tick(200).snapshot is None, "nothing pending: nothing to flush"


def test_a_deterioration_goes_out_at_once_and_a_recovery_waits() -> None:
    patient = Patient()
    patient.send(vitals(0, heart_rate_bpm=88), 0)
    assert patient.send(vitals(1, heart_rate_bpm=92), 1).trigger == "change"
    assert patient.send(vitals(2, heart_rate_bpm=88), 2).snapshot is None
    assert patient.send(vitals(3, heart_rate_bpm=93), 3).snapshot is None, "no worse than sent"
    assert patient.send(vitals(61, heart_rate_bpm=89), 61).trigger == "interval"


def test_a_new_parameter_and_an_admission_go_out_at_once() -> None:
    patient = Patient()
    patient.send(vitals(0, heart_rate_bpm=70), 0)
    assert patient.send(vitals(1, temperature_celsius=37.0), 1).trigger == "change"
    admitted = PatientAdmitted(
        event_id=uuid4(), occurred_at=T0, recorded_at=T0, source="ehr", patient_id="P1", ward="W1"
    )
    assert patient.send(admitted, 2).trigger == "change"


@pytest.mark.parametrize(
    ("field", "normal", "same_band", "across_sirs"),
    [
        ("white_cell_count_10e9_per_l", 8.0, 11.0, 12.5),
        ("white_cell_count_10e9_per_l", 8.0, 4.5, 3.5),
        ("paco2_mmhg", 40.0, 35.0, 31.0),
    ],
    ids=["wbc-high", "wbc-low", "paco2-low"],
)
def test_a_laboratory_result_goes_out_at_once_when_new_or_across_a_sirs_threshold(
    field: str, normal: float, same_band: float, across_sirs: float
) -> None:
    patient = Patient()
    patient.send(vitals(0, heart_rate_bpm=70), 0)
    assert patient.send(vitals(1, **{field: normal}), 1).trigger == "change", "a new reading"
    assert patient.send(vitals(2, **{field: same_band}), 2).snapshot is None, "waits"
    crossed = patient.send(vitals(3, **{field: across_sirs}), 3)
    assert crossed.trigger == "change"
    assert crossed.snapshot is not None
    assert getattr(crossed.snapshot.readings, field).value == across_sirs


def test_a_reading_that_turns_stale_goes_out_without_an_event() -> None:
    patient = Patient()
    patient.send(vitals(0, heart_rate_bpm=70, temperature_celsius=37.0), 0)
    assert patient.tick(900).snapshot is None
    stale = patient.tick(901)
    assert stale.trigger == "change"
    assert stale.snapshot is not None and stale.snapshot.readings.heart_rate_bpm.stale
    assert not stale.snapshot.readings.temperature_celsius.stale


def monitor_stream(rng: random.Random, onset: datetime | None) -> list[tuple[float, Any]]:
    """One hour of a realistic bedside stream: the monitor sends pulse, SpO2 and respiration
    every second, blood pressure every 15 minutes; nurses chart temperature, oxygen and
    consciousness every 30 minutes. A deteriorating patient worsens over 40 minutes."""
    baseline = draw_baseline(rng)
    course = Course(onset=onset, peak=0.8, ramp=timedelta(minutes=40), hold=timedelta(hours=1))
    events: list[tuple[float, Any]] = []
    for second in range(3600):
        reading = observe(baseline, course.severity(T0 + timedelta(seconds=second)), rng)
        values: dict[str, Any] = {
            "heart_rate_bpm": reading.heart_rate_bpm,
            "spo2_percent": reading.spo2_percent,
            "respiratory_rate_per_min": reading.respiratory_rate_per_min,
        }
        if second % 900 == 0:
            values |= {
                "systolic_bp_mmhg": reading.systolic_bp_mmhg,
                "diastolic_bp_mmhg": reading.diastolic_bp_mmhg,
            }
        if second % 1800 == 0:
            values |= {
                "temperature_celsius": reading.temperature_celsius,
                "on_supplemental_oxygen": reading.supplemental_oxygen,
                "consciousness": reading.consciousness,
            }
        events.append((second + rng.uniform(0.05, 0.5), vitals(second, **values)))
    return events


def test_a_monitor_sending_every_second_gets_a_few_snapshots_a_minute_at_most() -> None:
    rng = random.Random(2017)
    onsets = [None, None, None, T0 + timedelta(minutes=5), T0 + timedelta(minutes=15)]
    inputs = snapshots = 0
    for onset in onsets:
        patient = Patient()
        for arrival, event in monitor_stream(rng, onset):
            patient.send(event, arrival)
            if int(arrival) % 5 == 0:  # the flush timer, every 5 s
                patient.tick(arrival)
            inputs += 1
        snapshots += len(patient.snapshots)
    ratio = snapshots / inputs
    # 1 Hz input over an hour; at most one snapshot a minute plus scoring-relevant changes
    assert ratio < 0.05, f"{snapshots} snapshots for {inputs} events ({ratio:.3%})"
