"""Fusion as a real service process against the embedded broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.admissions import (
    DischargeCancelled,
    PatientAdmitted,
    PatientDischarged,
    PatientTransferred,
    TransferCancelled,
)
from schemas.care import (
    AlertAcknowledged,
    CeilingOfCareSet,
    ParameterOverrideCleared,
    ParameterOverrideSet,
    SuspectedInfectionSet,
)
from schemas.observations import Spo2ScaleSet, VitalSigns, VitalSignsRecorded
from schemas.patients import PatientStateUpdated
from schemas.topics import EVENTS_CLEAN, PATIENTS_STATE, full_name
from services.common.embedded import free_port
from services.fusion.domain import FusionPolicy, handle, snapshot
from services.fusion.readings import PARAMETERS
from tests.support import ServiceProcess, collect, publish

NOW = datetime.now(UTC).replace(microsecond=0)


def envelope(patient: str, at: datetime, source: str = "monitor") -> dict[str, Any]:
    return {
        "event_id": uuid4(),
        "occurred_at": at,
        "recorded_at": NOW,
        "source": source,
        "patient_id": patient,
    }


def recorded(patient: str, at: datetime, **vitals: Any) -> VitalSignsRecorded:
    return VitalSignsRecorded(**envelope(patient, at), vitals=VitalSigns(**vitals))


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
    env = fusion_env(settings)
    admitted = PatientAdmitted(**envelope("P1", NOW, "ehr"), ward="WARD-A")
    newer = recorded("P1", NOW, heart_rate_bpm=88, spo2_percent=97)
    late = recorded("P1", NOW - timedelta(minutes=10), heart_rate_bpm=140, temperature_celsius=37.2)
    unchanged = recorded("P1", NOW - timedelta(hours=2), heart_rate_bpm=150)
    discharged = PatientDischarged(
        **envelope("P1", NOW + timedelta(seconds=1), "ehr"), ward="WARD-A"
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

    # admitted, newer (readings appear), late (temperature appears), discharged: each is
    # scoring-relevant, so none is throttled; `unchanged` is older than the trend's hour
    assert [s.version for s in states] == [1, 2, 3, 4]
    final = states[-1].readings
    assert final.heart_rate_bpm is not None and final.heart_rate_bpm.value == 88, "late HR won"
    assert final.heart_rate_bpm.change_1h == 88 - 140
    assert final.temperature_celsius is not None and final.temperature_celsius.value == 37.2
    assert final.spo2_percent is not None and final.spo2_percent.observed_at == NOW
    assert states[0].ward == "WARD-A" and states[0].encounter_status == "in_progress"
    assert states[-1].encounter_status == "finished" and states[-1].bed is None
    assert states[1].cause_recorded_at == newer.recorded_at


def hospital_stream(rng: random.Random, patients: int) -> list[Any]:
    """A ward's last 90 minutes: per patient an admission, observations, a transfer (sometimes
    cancelled), a SpO2 scale, a discharge cancelled; merged in event time, then a few arrive
    late and a few are delivered twice."""
    merged: list[Any] = []
    for n in range(patients):
        patient, ward = f"P{n:02d}", f"W{n % 3}"
        start = NOW - timedelta(minutes=90) + timedelta(seconds=rng.uniform(0, 300))
        merged.append(PatientAdmitted(**envelope(patient, start, "ehr"), ward=ward, bed=f"B{n}"))
        for i in range(12):
            at = start + timedelta(minutes=7 * i + rng.uniform(1, 6))
            values = {
                "heart_rate_bpm": rng.randint(55, 125),
                "spo2_percent": rng.randint(88, 100),
                "respiratory_rate_per_min": rng.randint(10, 26),
            }
            if i % 4 == 0:
                values |= {"systolic_bp_mmhg": rng.randint(85, 160), "oxygen_flow_l_per_min": 2.0}
            merged.append(recorded(patient, at, **values))
        moved = start + timedelta(minutes=40)
        merged.append(
            PatientTransferred(
                **envelope(patient, moved, "ehr"), from_ward=ward, from_bed=f"B{n}", ward="W9"
            )
        )
        if n % 3 == 0:
            merged.append(
                TransferCancelled(
                    **envelope(patient, moved + timedelta(minutes=2), "ehr"),
                    ward=ward,
                    bed=f"B{n}",
                    cancelled_ward="W9",
                )
            )
        if n % 4 == 0:
            merged.append(Spo2ScaleSet(**envelope(patient, moved, "ehr"), scale=2))
        if n % 5 == 0:
            left = start + timedelta(minutes=85)
            merged.append(PatientDischarged(**envelope(patient, left, "ehr"), ward="W9"))
            merged.append(
                DischargeCancelled(
                    **envelope(patient, left + timedelta(seconds=30), "ehr"), ward="W9"
                )
            )
    merged.sort(key=lambda e: e.occurred_at)
    for i in rng.sample(range(len(merged) - 6), 15):  # late arrivals
        merged.insert(i + 6, merged.pop(i))
    for i in rng.sample(range(len(merged)), 5):  # redeliveries
        merged.append(merged[i])
    return merged


def comparable(state: PatientStateUpdated) -> tuple[Any, ...]:
    return (
        state.version,
        state.encounter_status,
        state.ward,
        state.bed,
        state.spo2_scale,
        state.readings,
    )


LONG_AGES = dict.fromkeys(PARAMETERS, 86_400)
"""Maximum ages for the restart and rebalance tests: staleness is not under test there."""


def restart_env(settings: Any, *, changelog_interval_seconds: float) -> dict[str, str]:
    """Fusion for the restart and rebalance tests: snapshots at most once a second, the tick
    every 0.25 s, records on the changelog every `changelog_interval_seconds`."""
    return fusion_env(settings) | {
        "WARDFLOW_MIN_SNAPSHOT_INTERVAL_SECONDS": "1",
        "WARDFLOW_FLUSH_CHECK_INTERVAL_SECONDS": "0.25",
        "WARDFLOW_CHANGELOG_INTERVAL_SECONDS": str(changelog_interval_seconds),
        "WARDFLOW_MAX_AGE_SECONDS": json.dumps(LONG_AGES),
    }


def reference_states(events: list[Any]) -> dict[str, tuple[Any, ...]]:
    """Each patient's last state by the pure rules over the same events, never stopped."""
    policy = FusionPolicy(max_age_seconds=LONG_AGES)
    records: dict[str, Any] = {}
    for event in events:
        records[event.patient_id] = handle(
            records.get(event.patient_id), event, now=NOW, partition=0, policy=policy
        ).record
    return {p: comparable(snapshot(r, at=NOW, policy=policy)) for p, r in records.items()}


def last_per_patient(states: list[PatientStateUpdated]) -> dict[str, tuple[Any, ...]]:
    return {state.patient_id: comparable(state) for state in states}


def assert_same_states(
    seen: list[PatientStateUpdated], reference: dict[str, tuple[Any, ...]]
) -> None:
    final = last_per_patient(seen)
    differ = {p: (final.get(p), state) for p, state in reference.items() if final.get(p) != state}
    assert not differ, (
        f"{len(differ)} patients differ (got, expected): {next(iter(differ.items()))}"
    )


async def key_partitions(kafka_url: str, topic: str) -> dict[bytes, set[int]]:
    """Which partitions each key of a topic (2 partitions) was written to, read to its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url, fetch_max_wait_ms=10)
    await consumer.start()
    seen: dict[bytes, set[int]] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(2)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        async with asyncio.timeout(30):
            while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for record in records:
                        seen.setdefault(record.key, set()).add(record.partition)
    finally:
        await consumer.stop()
    return seen


async def test_state_after_kill_9_mid_stream_is_the_state_without_a_crash(
    settings_factory, producer, kafka, tmp_path
) -> None:
    settings = await settings_factory()
    # Records written and offsets committed several times before the kill: the restart
    # restores the records and replays the events after the last commit.
    env = restart_env(settings, changelog_interval_seconds=0.2)
    events = hospital_stream(random.Random(5), patients=20)
    assert len(events) >= 300
    reference = reference_states(events)
    half = len(events) // 2

    async def publish_slowly(batch: list[Any], sent: asyncio.Event | None = None) -> None:
        for i, event in enumerate(batch):
            await publish(producer, settings, EVENTS_CLEAN, event)
            if sent is not None and i == len(batch) * 2 // 3:
                sent.set()
            await asyncio.sleep(0.01)

    log = tmp_path / "fusion.log"
    async with ServiceProcess("fusion", env, log, free_port()) as worker:
        two_thirds_sent = asyncio.Event()
        publishing = asyncio.create_task(publish_slowly(events[:half], two_thirds_sent))
        await asyncio.wait_for(two_thirds_sent.wait(), timeout=30)
        worker.kill()  # SIGKILL, mid-stream: the publisher keeps going
        await asyncio.wait_for(publishing, timeout=30)

    seen: list[PatientStateUpdated] = []

    def converged(states: list[PatientStateUpdated]) -> bool:
        seen[:] = states
        return last_per_patient(states) == reference

    async with ServiceProcess("fusion", env, log, free_port()):
        await publish_slowly(events[half:])
        with contextlib.suppress(AssertionError):  # reported below, readably
            await collect(kafka.url, settings, PATIENTS_STATE, converged, timeout_seconds=60)

    assert_same_states(seen, reference)
    assert len(seen) < len(events), "throttling: fewer snapshots than input events"
    takeovers = re.findall(r"took over partitions=.* patients=(\d+)", log.read_text())
    assert len(takeovers) == 2 and int(takeovers[1]) > 0, "the restart did not recover the table"
    clean = await key_partitions(kafka.url, full_name(EVENTS_CLEAN, settings.topic_prefix))
    changelog = await key_partitions(kafka.url, f"{settings.consumer_group}-patients-changelog")
    by_patient = {json.loads(key).encode(): partitions for key, partitions in changelog.items()}
    assert by_patient == clean, "each record's changelog must be on its events' partition"


async def test_a_second_replica_joining_and_leaving_mid_stream_changes_no_state(
    settings_factory, producer, kafka, tmp_path
) -> None:
    """Two rebalances mid-stream: a second worker takes half of the partitions (the first keeps
    the rest, with records ahead of its committed offsets, and replays from them), then stops
    gracefully (it writes its records and commits) and the first takes its partitions back from
    the changelog. The final state is the pure rules' over the same events."""
    settings = await settings_factory()
    env = restart_env(settings, changelog_interval_seconds=0.3)
    events = hospital_stream(random.Random(11), patients=20)
    reference = reference_states(events)
    third = len(events) // 3

    async def publish_slowly(batch: list[Any]) -> None:
        for event in batch:
            await publish(producer, settings, EVENTS_CLEAN, event)
            await asyncio.sleep(0.01)

    first_log, second_log = tmp_path / "fusion-1.log", tmp_path / "fusion-2.log"
    seen: list[PatientStateUpdated] = []

    def converged(states: list[PatientStateUpdated]) -> bool:
        seen[:] = states
        return last_per_patient(states) == reference

    async with ServiceProcess("fusion", env, first_log, free_port()):
        await publish_slowly(events[:third])
        async with ServiceProcess("fusion", env, second_log, free_port()):
            await publish_slowly(events[third : 2 * third])
        await publish_slowly(events[2 * third :])
        with contextlib.suppress(AssertionError):  # reported below, readably
            await collect(kafka.url, settings, PATIENTS_STATE, converged, timeout_seconds=60)

    assert_same_states(seen, reference)
    taken = re.findall(r"took over partitions=\[([0-9, ]*)\]", second_log.read_text())
    assert taken and taken[0] in ("0", "1"), "the second worker had one partition of two"
    back = re.findall(r"took over partitions=\[([0-9, ]*)\]", first_log.read_text())
    assert back[-1] == "0, 1", "the first worker had both partitions again at the end"


async def test_care_instructions_reach_the_patient_state_at_once(
    settings_factory, producer, kafka, tmp_path
) -> None:
    settings = await settings_factory()
    env = fusion_env(settings) | {
        "WARDFLOW_MIN_SNAPSHOT_INTERVAL_SECONDS": "3600",  # only an at-once change goes out
    }
    role = {"set_by_role": "ICU consultant"}
    alert = uuid4()
    admitted = PatientAdmitted(**envelope("P7", NOW - timedelta(minutes=30), "ehr"), ward="W1")
    vitals = recorded("P7", NOW - timedelta(seconds=30), heart_rate_bpm=80, spo2_percent=90)
    newer_ceiling = CeilingOfCareSet(
        **envelope("P7", NOW - timedelta(minutes=5), "ehr"), ceiling="hdu", **role
    )
    older_ceiling = CeilingOfCareSet(
        **envelope("P7", NOW - timedelta(minutes=10), "ehr"), ceiling="general", **role
    )
    infection = SuspectedInfectionSet(
        **envelope("P7", NOW - timedelta(minutes=4), "ehr"), suspected=True, **role
    )
    spo2 = ParameterOverrideSet(
        **envelope("P7", NOW - timedelta(minutes=3), "ehr"),
        parameter="spo2_percent",
        low=88,
        high=92,
        expires_at=NOW + timedelta(days=2),
        **role,
    )
    heart_rate = ParameterOverrideSet(
        **envelope("P7", NOW - timedelta(minutes=3), "ehr"),
        parameter="heart_rate_bpm",
        low=90,
        high=110,
        expires_at=NOW + timedelta(days=1),
        **role,
    )
    heart_rate_cleared = ParameterOverrideCleared(
        **envelope("P7", NOW - timedelta(minutes=2), "ehr"), parameter="heart_rate_bpm", **role
    )
    acknowledged = AlertAcknowledged(
        **envelope("P7", NOW - timedelta(minutes=1), "ehr"),
        assessment_id=alert,
        acknowledged_by_role="registered nurse",
    )
    stream = [admitted, vitals, newer_ceiling, older_ceiling, infection, spo2, heart_rate_cleared]
    stream += [heart_rate, acknowledged, spo2, acknowledged]  # a late set after its clear; resends

    async with ServiceProcess("fusion", env, tmp_path / "fusion.log", free_port()):
        await publish(producer, settings, EVENTS_CLEAN, *stream)
        states: list[PatientStateUpdated] = await collect(
            kafka.url,
            settings,
            PATIENTS_STATE,
            lambda events: any(e.care.acknowledgement is not None for e in events),
        )

    # admitted, vitals, hdu, infection, spo2 override, acknowledgement: each at once despite the
    # hour-long interval; the older ceiling, the cleared-then-late override and the resends change
    # nothing, so they bump no version and send no snapshot
    assert [s.version for s in states] == [1, 2, 3, 4, 5, 6]
    assert [s.care.ceiling for s in states] == ["icu", "icu", "hdu", "hdu", "hdu", "hdu"]
    final = states[-1].care
    assert (final.ceiling, final.ceiling_set_by_role, final.suspected_infection) == (
        "hdu",
        "ICU consultant",
        True,
    )
    assert [(o.parameter, o.low, o.high) for o in final.overrides] == [("spo2_percent", 88, 92)]
    assert final.overrides[0].expires_at == spo2.expires_at
    assert final.acknowledgement is not None and final.acknowledgement.assessment_id == alert
    assert states[-1].readings.spo2_percent is not None, "the readings travel beside the plan"
    assert states[-1].cause_recorded_at == acknowledged.recorded_at
