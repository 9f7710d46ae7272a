"""The closed loop on real components: a deteriorating patient, from raw vital signs to an HDU/ICU
bed the scheduler reserves.

Cleaning, diagnosis and the scheduler run as stages in this process, fusion as a real faust worker
process, all on the embedded broker and Redis. The vital signs come from the simulator's own
physiology (a fixed baseline at rising severity), published on events.raw as ingest would. The
rules are the shipped ones with response times of 12 s, so an unacknowledged alert escalates
within the test.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from schemas.admissions import PatientAdmitted
from schemas.beds import BedReserved
from schemas.care import AlertAcknowledged
from schemas.observations import Measurement, VitalSignsObserved
from schemas.topics import (
    EVENTS_CLEAN,
    EVENTS_RAW,
    PATIENTS_ALERTS,
    PATIENTS_ASSESSMENTS,
    SCHEDULING_DECISIONS,
)
from schemas.vocabulary import Band
from services.cleaning.app import build as build_cleaning
from services.cleaning.config import CleaningSettings
from services.common.embedded import free_port
from services.common.hospital import load_layout
from services.common.stage import StageRunner
from services.diagnosis.app import build as build_diagnosis
from services.diagnosis.config import DiagnosisSettings
from services.scheduler.app import Scheduler
from services.scheduler.config import SchedulerSettings
from services.scheduler.store import RedisBedStore
from services.simulator.physiology import draw_baseline, measurements, observe
from tests.support import RunningStage, ServiceProcess, collect, publish

RESPOND_MINUTES = 0.2  # 12 s instead of 60 and 30 minutes: room for the acknowledgement
BASELINE = draw_baseline(random.Random(11))
# With this baseline the simulator's physiology scores NEWS2 0 (low) at severity 0, 5 (medium) at
# 0.3 and 8 (high) at 0.5; the test checks the bands rather than trusting this comment.
SEVERITIES = ((0.0, Band.LOW), (0.3, Band.MEDIUM), (0.5, Band.HIGH))


def rules_file(tmp_path: Path) -> str:
    text = resources.files("services.diagnosis").joinpath("rules.toml").read_text()
    for minutes in (60, 30):
        text = text.replace(
            f"respond_within_minutes = {minutes}", f"respond_within_minutes = {RESPOND_MINUTES}"
        )
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return str(path)


def envelope(patient: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "event_id": uuid4(),
        "occurred_at": now,
        "recorded_at": now,
        "source": "test-ehr",
        "patient_id": patient,
    }


def vital_signs(patient: str, severity: float) -> VitalSignsObserved:
    reading = observe(BASELINE, severity, random.Random(3))
    return VitalSignsObserved(
        **envelope(patient),
        device_id="MON-1",
        measurements=[Measurement(**m) for m in measurements(reading, fahrenheit=False)],
        supplemental_oxygen=reading.supplemental_oxygen,
        consciousness=reading.consciousness,
    )


def of(events: list[Any], patient: str, kind: str) -> list[Any]:
    return [e for e in events if getattr(e, "patient_id", None) == patient and e.kind == kind]


async def test_a_deteriorating_patient_is_escalated_and_gets_a_critical_care_bed(
    settings_factory, producer, kafka, redis_server, redis, unique, tmp_path
) -> None:
    # One consumer group per stage, as in a deployment (faust's group cannot be shared).
    cleaning = await settings_factory(CleaningSettings, consumer_group=f"g{unique}-cleaning")
    diagnosis = await settings_factory(
        DiagnosisSettings, rules_file=rules_file(tmp_path), consumer_group=f"g{unique}-diagnosis"
    )
    scheduling = await settings_factory(
        SchedulerSettings,
        redis_url=redis_server.url,
        redis_key_prefix=f"t{unique}",
        consumer_group=f"g{unique}-scheduler",
    )
    layout = load_layout("")  # the example hospital: WARD-A is a general ward, ICU has 10 beds
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(layout)
    scheduler = StageRunner(
        "scheduler", scheduling, [EVENTS_CLEAN, PATIENTS_ASSESSMENTS], Scheduler(store, layout)
    )
    fusion_env = {
        "KAFKA_BOOTSTRAP_SERVERS": cleaning.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": cleaning.topic_prefix,
        "WARDFLOW_CONSUMER_GROUP": f"g{unique}-fusion",
        "WARDFLOW_PARTITIONS": "2",
        "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "WARDFLOW_KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    unwatched, watched = "P-DETERIORATING", "P-ACKNOWLEDGED"
    async with (
        RunningStage(build_cleaning(cleaning)),
        ServiceProcess("fusion", fusion_env, tmp_path / "fusion.log", free_port()),
        RunningStage(build_diagnosis(diagnosis)),
        RunningStage(scheduler),
    ):
        admissions = [
            PatientAdmitted(**envelope(patient), ward="WARD-A") for patient in (watched, unwatched)
        ]
        await publish(producer, cleaning, EVENTS_RAW, *admissions)
        for severity, band in SEVERITIES:
            await publish(
                producer,
                cleaning,
                EVENTS_RAW,
                vital_signs(watched, severity),
                vital_signs(unwatched, severity),
            )
            assessments = await collect(
                kafka.url,
                diagnosis,
                PATIENTS_ASSESSMENTS,
                lambda events, band=band: all(
                    any(a.band is band for a in of(events, p, "AssessmentIssued"))
                    for p in (watched, unwatched)
                ),
                timeout_seconds=60,
            )
        # A nurse acknowledges the watched patient's high alert at once, through the pipeline.
        high = next(a for a in of(assessments, watched, "AssessmentIssued") if a.band is Band.HIGH)
        acknowledgement = AlertAcknowledged(
            **envelope(watched), assessment_id=high.event_id, acknowledged_by_role="staff nurse"
        )
        await publish(producer, cleaning, EVENTS_RAW, acknowledgement)
        alerts = await collect(
            kafka.url,
            diagnosis,
            PATIENTS_ALERTS,
            lambda states: any(
                s.patient_id == watched and s.alert and s.alert.acknowledged_at for s in states
            ),
            timeout_seconds=30,
        )
        events = await collect(
            kafka.url,
            diagnosis,
            PATIENTS_ASSESSMENTS,
            lambda events: bool(of(events, unwatched, "AlertEscalated")),
            timeout_seconds=60,
        )
        decisions = await collect(
            kafka.url,
            scheduling,
            SCHEDULING_DECISIONS,
            lambda decisions: bool(of(decisions, unwatched, "BedReserved")),
            timeout_seconds=30,
        )

    # In order: nothing scored yet at admission, then low, medium, high; the same band is never
    # issued twice in a row.
    for patient in (watched, unwatched):
        issued = of(events, patient, "AssessmentIssued")
        bands = [(a.band, a.complete) for a in issued]
        assert bands == [(None, False), (Band.LOW, True), (Band.MEDIUM, True), (Band.HIGH, True)]
        assert [a.emitted_because for a in issued] == ["first", "completeness", "band", "band"]

    # The unacknowledged high alert escalated; the acknowledged one did not.
    high_alert = next(
        a for a in of(events, unwatched, "AssessmentIssued") if a.band is Band.HIGH
    ).event_id
    escalated = of(events, unwatched, "AlertEscalated")
    assert high_alert in {e.assessment_id for e in escalated}
    assert all(e.band in (Band.MEDIUM, Band.HIGH) for e in escalated)
    assert not any(e.assessment_id == high.event_id for e in of(events, watched, "AlertEscalated"))
    acknowledged = next(
        s.alert for s in alerts if s.patient_id == watched and s.alert and s.alert.acknowledged_at
    )
    assert acknowledged.acknowledged_by_role == "staff nurse"
    assert acknowledged.assessment_id == high.event_id

    # The high band in a general ward asked for an ICU bed, and the scheduler reserved one.
    (request,) = of(events, unwatched, "CriticalCareBedRequested")
    assert (request.level_of_care, request.ward, request.band) == ("icu", "WARD-A", Band.HIGH)
    reserved: BedReserved = of(decisions, unwatched, "BedReserved")[0]
    assert reserved.ward == "ICU" and reserved.request_id == request.event_id
    assert isinstance(reserved.request_id, UUID)
    assert await store.statuses("ICU") and (await store.statuses("ICU"))[reserved.bed] == "reserved"
