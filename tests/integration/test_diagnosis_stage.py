"""The diagnosis stage on the real broker: a fused state in, an explained NEWS2 assessment out."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import uuid4

from schemas.assessments import AlertStateUpdated, AssessmentIssued
from schemas.care import Acknowledgement
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.topics import PATIENTS_ALERTS, PATIENTS_ASSESSMENTS, PATIENTS_STATE
from schemas.vocabulary import Band, Consciousness
from services.diagnosis.app import build
from services.diagnosis.config import DiagnosisSettings
from tests.support import RunningStage, collect, eventually, metric_value, publish


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


# --- alert hygiene, escalation and restart, on the real broker --------------------------------


def fast_rules(tmp_path: Path, respond_minutes: float, hold_minutes: float = 0.0) -> str:
    """The shipped rules with response and hold times short enough for a test."""
    text = resources.files("services.diagnosis").joinpath("rules.toml").read_text()
    text = text.replace(
        "respond_within_minutes = 60", f"respond_within_minutes = {respond_minutes}"
    )
    text = text.replace(
        "respond_within_minutes = 30", f"respond_within_minutes = {respond_minutes}"
    )
    text = text.replace(
        "improvement_hold_minutes = 15", f"improvement_hold_minutes = {hold_minutes}"
    )
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return str(path)


def sick_in_ward(patient: str, version: int) -> PatientStateUpdated:
    sick = state(
        patient,
        version,
        respiratory_rate_per_min=25,
        spo2_percent=91,
        systolic_bp_mmhg=90,
        heart_rate_bpm=131,
        temperature_celsius=39.1,
    )
    return sick.model_copy(update={"ward": "WARD-A", "encounter_status": "in_progress"})


def of_patient(events: list[Any], patient: str, kind: str) -> list[Any]:
    return [e for e in events if e.patient_id == patient and e.kind == kind]


async def test_same_band_is_issued_once_and_an_unacknowledged_alert_escalates(
    settings_factory, producer, kafka, tmp_path
) -> None:
    settings = await settings_factory(
        DiagnosisSettings, rules_file=fast_rules(tmp_path, respond_minutes=0.05)
    )
    snapshots = [sick_in_ward("P1", version) for version in (1, 2, 3)]
    async with RunningStage(build(settings)):
        await publish(producer, settings, PATIENTS_STATE, *snapshots)
        events = await collect(
            kafka.url,
            settings,
            PATIENTS_ASSESSMENTS,
            lambda events: bool(of_patient(events, "P1", "AlertEscalated")),
        )
        # Restored empty at start, then one open high alert nobody acknowledged (escalated or not).
        assert metric_value("wardflow_alerts_unacknowledged", band="high") == 1
        assert metric_value("wardflow_alerts_unacknowledged", band="medium") == 0
    (issued,) = of_patient(events, "P1", "AssessmentIssued")
    assert issued.band is Band.HIGH and issued.emitted_because == "first"
    (escalated,) = of_patient(events, "P1", "AlertEscalated")
    assert escalated.assessment_id == issued.event_id and escalated.band is Band.HIGH
    assert escalated.escalate_to == "critical care team (emergency call)"
    (request,) = of_patient(events, "P1", "CriticalCareBedRequested")
    assert request.level_of_care == "icu" and request.ward == "WARD-A"
    alerts: list[AlertStateUpdated] = await collect(
        kafka.url,
        settings,
        PATIENTS_ALERTS,
        lambda states: any(s.alert and s.alert.escalated_at for s in states),
    )
    assert alerts[-1].bed_request is not None
    assert alerts[-1].bed_request.request_id == request.event_id


async def test_a_restarted_diagnosis_keeps_open_alerts_and_does_not_issue_again(
    settings_factory, producer, kafka, tmp_path
) -> None:
    settings = await settings_factory(
        DiagnosisSettings, rules_file=fast_rules(tmp_path, respond_minutes=0.15)
    )
    async with RunningStage(build(settings)):
        await publish(producer, settings, PATIENTS_STATE, sick_in_ward("P1", 1))
        await collect(
            kafka.url,
            settings,
            PATIENTS_ALERTS,
            lambda states: any(s.patient_id == "P1" and s.alert for s in states),
        )
    # Stopped before the alert's 9 s response time; a new process restores it from patients.alerts.
    async with RunningStage(build(settings)):
        await publish(producer, settings, PATIENTS_STATE, sick_in_ward("P1", 2))
        events = await collect(
            kafka.url,
            settings,
            PATIENTS_ASSESSMENTS,
            lambda events: bool(of_patient(events, "P1", "AlertEscalated")),
        )
    assert len(of_patient(events, "P1", "AssessmentIssued")) == 1, "not issued again"
    assert len(of_patient(events, "P1", "CriticalCareBedRequested")) == 1, "not requested again"
    assert len(of_patient(events, "P1", "AlertEscalated")) == 1


async def test_oldest_unacknowledged_alert_ages_with_the_tick_and_clears_on_acknowledgement(
    settings_factory, producer, kafka, tmp_path
) -> None:
    settings = await settings_factory(
        DiagnosisSettings, rules_file=fast_rules(tmp_path, respond_minutes=30), tick_seconds=0.1
    )
    first = sick_in_ward("P1", 1)
    gauge = "wardflow_alert_oldest_unacknowledged_seconds"

    def oldest(band: str) -> float:
        return metric_value(gauge, band=band)

    async with RunningStage(build(settings)):
        await publish(producer, settings, PATIENTS_STATE, first)
        alerts = await collect(
            kafka.url,
            settings,
            PATIENTS_ALERTS,
            lambda states: any(s.patient_id == "P1" and s.alert for s in states),
        )
        raised = next(s.alert for s in alerts if s.alert).raised_at

        async def aged(seconds: float) -> bool:
            return oldest("high") >= seconds

        await eventually(lambda: aged(0.5))  # the tick moves it on without a new snapshot
        age = oldest("high")
        assert age <= (datetime.now(UTC) - raised).total_seconds()
        assert oldest("medium") == 0
        assert metric_value("wardflow_alerts_unacknowledged", band="high") == 1

        seen = first.model_copy(
            update={
                "event_id": uuid4(),
                "version": 2,
                "care": first.care.model_copy(
                    update={
                        "acknowledgement": Acknowledgement(
                            acknowledged_at=datetime.now(UTC), acknowledged_by_role="nurse"
                        )
                    }
                ),
            }
        )
        await publish(producer, settings, PATIENTS_STATE, seen)

        async def cleared() -> bool:
            return oldest("high") == 0

        await eventually(cleared)
        assert metric_value("wardflow_alerts_unacknowledged", band="high") == 0
