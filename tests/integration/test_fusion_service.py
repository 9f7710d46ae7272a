"""Fusion as a real faust worker process against the embedded broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from schemas.admissions import PatientAdmitted, PatientDischarged
from schemas.observations import VitalSigns, VitalSignsRecorded
from schemas.patients import PatientStateUpdated
from schemas.topics import EVENTS_CLEAN, PATIENTS_STATE
from services.common.embedded import free_port
from tests.support import ServiceProcess, collect, publish

NOW = datetime.now(UTC).replace(microsecond=0)


def recorded(patient: str, at: datetime, **vitals: float) -> VitalSignsRecorded:
    return VitalSignsRecorded(
        event_id=uuid4(),
        occurred_at=at,
        recorded_at=NOW,
        source="monitor",
        patient_id=patient,
        vitals=VitalSigns(**vitals),
    )


def fusion_env(settings) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "WARDFLOW_CONSUMER_GROUP": settings.consumer_group,
        "WARDFLOW_PARTITIONS": "2",
        "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "WARDFLOW_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }


async def test_fuses_latest_readings_and_location(
    settings_factory, producer, kafka, tmp_path
) -> None:
    settings = await settings_factory()
    env = fusion_env(settings) | {"WARDFLOW_STATE_DIR": str(tmp_path / "state")}
    admitted = PatientAdmitted(
        event_id=uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        source="ehr",
        patient_id="P1",
        ward="WARD-A",
    )
    newer = recorded("P1", NOW, heart_rate_bpm=88, spo2_percent=97)
    late = recorded("P1", NOW - timedelta(minutes=10), heart_rate_bpm=140, temperature_celsius=37.2)
    unchanged = recorded("P1", NOW - timedelta(minutes=20), heart_rate_bpm=150)
    discharged = PatientDischarged(
        event_id=uuid4(),
        occurred_at=NOW + timedelta(seconds=1),
        recorded_at=NOW,
        source="ehr",
        patient_id="P1",
        ward="WARD-A",
    )
    async with ServiceProcess("fusion", env, tmp_path / "fusion.log", free_port()):
        await publish(
            producer, settings, EVENTS_CLEAN, admitted, newer, late, unchanged, discharged
        )
        states: list[PatientStateUpdated] = await collect(
            kafka.url,
            settings,
            PATIENTS_STATE,
            lambda events: any(e.encounter_status == "finished" for e in events),
        )

    # admitted, newer, late (temperature is new), discharged; `unchanged` changed nothing
    assert [s.version for s in states] == [1, 2, 3, 4]
    final = states[-1].readings
    assert final.heart_rate_bpm is not None and final.heart_rate_bpm.value == 88, "late HR lost"
    assert final.temperature_celsius is not None and final.temperature_celsius.value == 37.2
    assert final.spo2_percent is not None and final.spo2_percent.observed_at == NOW
    assert states[0].ward == "WARD-A" and states[0].encounter_status == "in_progress"
    assert states[-1].encounter_status == "finished" and states[-1].bed is None
    assert states[1].cause_recorded_at == newer.recorded_at
