"""The cleaning stage on the real embedded broker: canonical events out, refusals dead-lettered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from schemas.admissions import PatientAdmitted, PatientDischarged
from schemas.deadletter import EventDeadLettered
from schemas.observations import Measurement, VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN, EVENTS_DLQ, EVENTS_RAW, full_name
from schemas.vocabulary import VitalParameter
from services.cleaning.app import build
from services.cleaning.config import CleaningSettings
from tests.support import RunningStage, collect, metric_value, publish

NOW = datetime.now(UTC).replace(microsecond=0)
HR, RR = VitalParameter.HEART_RATE, VitalParameter.RESPIRATORY_RATE
TEMP = VitalParameter.TEMPERATURE


def vitals(patient: str, *measurements: Measurement, at: datetime = NOW) -> VitalSignsObserved:
    return VitalSignsObserved(
        event_id=uuid4(),
        occurred_at=at,
        recorded_at=NOW,
        source="test-monitor",
        patient_id=patient,
        measurements=list(measurements),
    )


def adt(kind: type[PatientAdmitted] | type[PatientDischarged]) -> Any:
    return kind(
        event_id=uuid4(), occurred_at=NOW, recorded_at=NOW, source="ehr", patient_id="P1", ward="W"
    )


COUNTERS = [
    ("wardflow_values_total", {"outcome": "valid"}),
    ("wardflow_values_total", {"outcome": "artifact"}),
    ("wardflow_values_total", {"outcome": "impossible"}),
    ("wardflow_values_total", {"outcome": "unmapped"}),
    ("wardflow_duplicates_dropped_total", {"reason": "event_id"}),
    ("wardflow_duplicates_dropped_total", {"reason": "same_reading"}),
    ("wardflow_late_events_total", {}),
    ("wardflow_events_dropped_total", {"reason": "no_vital_signs"}),
    ("wardflow_events_rejected_total", {"reason": "impossible_value"}),
    ("wardflow_events_rejected_total", {"reason": "future_event"}),
]


def counts() -> list[float]:
    return [metric_value(name, stage="cleaning", **labels) for name, labels in COUNTERS]


async def test_cleans_converts_flags_drops_and_dead_letters(
    settings_factory: Any, producer: Any, kafka: Any
) -> None:
    settings = await settings_factory(CleaningSettings)
    fahrenheit = vitals("P1", Measurement(parameter=TEMP, value=101.3, unit="[degF]"))
    pressure = vitals(
        "P1",
        Measurement(code="NBP", code_system="99LOCAL", text="140/90", unit="mm[Hg]"),
        at=NOW - timedelta(seconds=30),
    )
    probe_off = vitals(
        "P1",
        Measurement(parameter=HR, value=0, unit="/min"),
        Measurement(parameter=RR, value=0.25, unit="/s"),
        at=NOW - timedelta(seconds=60),
    )
    late = vitals(
        "P1", Measurement(parameter=HR, value=80, unit="/min"), at=NOW - timedelta(days=2)
    )
    unmapped = vitals("P1", Measurement(code="GLU", code_system="99LAB", value=5.5, unit="mmol/L"))
    retried = fahrenheit.model_copy(update={"event_id": uuid4()})  # same reading, new event id
    impossible = vitals("P2", Measurement(parameter=HR, value=400, unit="/min"))
    future = vitals(
        "P3", Measurement(parameter=HR, value=70, unit="/min"), at=NOW + timedelta(hours=1)
    )
    admitted, discharged = adt(PatientAdmitted), adt(PatientDischarged)
    before = counts()
    async with RunningStage(build(settings)):
        # One patient, one partition: once the discharge is out, everything before it was processed.
        await publish(
            producer, settings, EVENTS_RAW,
            fahrenheit, pressure, probe_off, late, unmapped, impossible, future, admitted,
            fahrenheit, retried, discharged,
        )  # fmt: skip
        await producer.send_and_wait(
            full_name(EVENTS_RAW, settings.topic_prefix), value=b"\xff not json", key=b"P4"
        )
        clean = await collect(
            kafka.url, settings, EVENTS_CLEAN, lambda events: any(e == discharged for e in events)
        )
        letters = await collect(kafka.url, settings, EVENTS_DLQ, lambda events: len(events) >= 3)

    recorded = {e.event_id: e for e in clean if isinstance(e, VitalSignsRecorded)}
    assert set(recorded) == {
        fahrenheit.event_id,
        pressure.event_id,
        probe_off.event_id,
        late.event_id,
    }
    assert [type(e) for e in clean if not isinstance(e, VitalSignsRecorded)] == [
        PatientAdmitted,
        PatientDischarged,
    ]
    temperature = recorded[fahrenheit.event_id]
    assert temperature.vitals.temperature_celsius == 38.5
    assert (temperature.origins[0].original_value, temperature.origins[0].original_unit) == (
        101.3,
        "[degF]",
    )
    bp = recorded[pressure.event_id].vitals
    assert (bp.systolic_bp_mmhg, bp.diastolic_bp_mmhg) == (140.0, 90.0)
    flagged = recorded[probe_off.event_id]
    assert (flagged.vitals.heart_rate_bpm, flagged.vitals.respiratory_rate_per_min) == (None, 15.0)
    assert [(a.parameter, a.value, a.reason) for a in flagged.artifacts] == [(HR, 0.0, "probe_off")]
    assert (recorded[late.event_id].late, temperature.late) == (True, False)

    by_reason = {letter.reason: letter for letter in letters}
    assert set(by_reason) == {"impossible_value", "future_event", "invalid_event"}
    assert isinstance(by_reason["impossible_value"], EventDeadLettered)
    assert by_reason["impossible_value"].detail.startswith("heart_rate_bpm=400 ")
    assert by_reason["impossible_value"].original_value == impossible.model_dump_json()
    assert by_reason["future_event"].original_key == "P3"
    assert by_reason["invalid_event"].original_value_encoding == "base64"

    # Every count was made before the outputs above were produced: no waiting needed.
    counted = {f"{name}{labels}": after - was for (name, labels), after, was in
               zip(COUNTERS, counts(), before, strict=True)}  # fmt: skip
    assert list(counted.values()) == [5, 1, 1, 1, 1, 1, 1, 1, 1, 1], counted
