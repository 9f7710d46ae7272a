"""The diagnosis stage on the real broker: a fused state in, an explained NEWS2 assessment out."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from schemas.assessments import AssessmentIssued
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.topics import PATIENTS_ASSESSMENTS, PATIENTS_STATE
from schemas.vocabulary import Band, Consciousness
from services.diagnosis.app import build
from services.diagnosis.config import DiagnosisSettings
from tests.support import RunningStage, collect, metric_value, publish


def state(patient: str, version: int, **numbers: float) -> PatientStateUpdated:
    now = datetime.now(UTC)
    readings = {k: NumericReading(value=v, observed_at=now, source="m") for k, v in numbers.items()}
    return PatientStateUpdated(
        event_id=uuid4(),
        occurred_at=now,
        recorded_at=now,
        source="fusion",
        patient_id=patient,
        version=version,
        readings=PatientReadings(
            **readings,
            supplemental_oxygen=OxygenReading(
                on_supplemental_oxygen=True, observed_at=now, source="m"
            ),
            consciousness=ConsciousnessReading(
                level=Consciousness.VOICE, observed_at=now, source="m"
            ),
        ),
        cause_recorded_at=now,
    )


async def test_scores_a_deteriorating_patient_and_flags_incomplete(
    settings_factory, producer, kafka
) -> None:
    settings = await settings_factory(DiagnosisSettings)
    # RR 25 (3) + SpO2 91 (3) + oxygen (2) + SBP 90 (3) + HR 131 (3) + V (3) + T 39.1 (2) = 19
    sick = state(
        "P1",
        1,
        respiratory_rate_per_min=25,
        spo2_percent=91,
        systolic_bp_mmhg=90,
        heart_rate_bpm=131,
        temperature_celsius=39.1,
    )
    partial = state("P2", 1, heart_rate_bpm=80)
    high_before = metric_value("wardflow_assessments_total", band="high")
    async with RunningStage(build(settings)):
        await publish(producer, settings, PATIENTS_STATE, sick, partial)
        assessments: list[AssessmentIssued] = await collect(
            kafka.url, settings, PATIENTS_ASSESSMENTS, lambda events: len(events) >= 2
        )
    by_patient = {a.patient_id: a for a in assessments}
    assert by_patient["P1"].aggregate == 19
    assert by_patient["P1"].band is Band.HIGH and by_patient["P1"].complete
    assert {s.parameter: s.points for s in by_patient["P1"].sub_scores}["heart_rate_bpm"] == 3
    # P2: oxygen (2) + V (3) = 5 known points, four parameters missing: incomplete, not normal
    assert not by_patient["P2"].complete
    assert set(by_patient["P2"].missing) == {
        "respiratory_rate_per_min",
        "spo2_percent",
        "systolic_bp_mmhg",
        "temperature_celsius",
    }
    assert by_patient["P2"].band is Band.MEDIUM, "a lower bound of 5 already means medium"
    assert metric_value("wardflow_assessments_total", band="high") == high_before + 1
    # Beside NEWS2: qSOFA 3/3 (RR 25, altered "V", SBP 90); SIRS from vital signs (T, HR, RR: 3
    # met, white cells unknown) is positive; shock index 131/90 = 1.46.
    sick = by_patient["P1"]
    assert sick.qsofa is not None and (sick.qsofa.points, sick.qsofa.positive) == (3, True)
    assert sick.sirs is not None and sick.sirs.positive is True and not sick.sirs.complete
    assert sick.shock_index is not None and sick.shock_index.value == 1.46
    # P2 has no respiratory rate or blood pressure: qSOFA cannot be called negative.
    assert by_patient["P2"].qsofa is not None and by_patient["P2"].qsofa.positive is None
