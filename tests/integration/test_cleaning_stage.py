"""The cleaning stage on the real embedded broker: canonical events out, refusals dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from schemas.admissions import PatientAdmitted, PatientDischarged
from schemas.deadletter import EventDeadLettered
from schemas.observations import Measurement, VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN, EVENTS_DLQ, EVENTS_RAW, full_name
from schemas.vocabulary import VitalParameter
from services.cleaning.app import build
from services.cleaning.config import CleaningSettings
from tests.support import RunningStage, collect, metric_value, publish

NOW = datetime.now(UTC)


def vitals(patient: str, *measurements: Measurement) -> VitalSignsObserved:
    return VitalSignsObserved(
        event_id=uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        source="test-monitor",
        patient_id=patient,
        measurements=list(measurements),
    )


async def test_cleans_converts_and_dead_letters(settings_factory, producer, kafka) -> None:
    settings = await settings_factory(CleaningSettings)
    fahrenheit = vitals(
        "P1", Measurement(parameter=VitalParameter.TEMPERATURE, value=101.3, unit="[degF]")
    )
    impossible = vitals(
        "P2", Measurement(parameter=VitalParameter.HEART_RATE, value=400, unit="/min")
    )
    admitted = PatientAdmitted(
        event_id=uuid4(), occurred_at=NOW, recorded_at=NOW, source="ehr", patient_id="P1", ward="W"
    )
    rejected_before = metric_value(
        "wardflow_events_rejected_total", stage="cleaning", reason="impossible_value"
    )
    async with RunningStage(build(settings)):
        # Same patient, same partition: once the discharge is out, the duplicate was processed.
        discharged = PatientDischarged(
            event_id=uuid4(),
            occurred_at=NOW,
            recorded_at=NOW,
            source="ehr",
            patient_id="P1",
            ward="W",
        )
        await publish(
            producer, settings, EVENTS_RAW, fahrenheit, impossible, admitted, fahrenheit, discharged
        )
        await producer.send_and_wait(
            full_name(EVENTS_RAW, settings.topic_prefix), value=b"\xff not json", key=b"P3"
        )
        clean = await collect(
            kafka.url, settings, EVENTS_CLEAN, lambda events: any(e == discharged for e in events)
        )
        letters = await collect(kafka.url, settings, EVENTS_DLQ, lambda events: len(events) >= 2)

    recorded = [e for e in clean if isinstance(e, VitalSignsRecorded)]
    assert len(recorded) == 1, "the repeated event id must be dropped"
    assert recorded[0].vitals.temperature_celsius == 38.5
    assert recorded[0].origins[0].original_unit == "[degF]"
    assert recorded[0].event_id == fahrenheit.event_id
    assert any(isinstance(e, PatientAdmitted) for e in clean)

    by_reason = {letter.reason: letter for letter in letters}
    assert isinstance(by_reason["impossible_value"], EventDeadLettered)
    assert "heart_rate_bpm=400" in by_reason["impossible_value"].detail
    assert by_reason["impossible_value"].original_value == impossible.model_dump_json()
    assert by_reason["invalid_event"].original_value_encoding == "base64"
    assert (
        metric_value("wardflow_events_rejected_total", stage="cleaning", reason="impossible_value")
        == rejected_before + 1
    )
