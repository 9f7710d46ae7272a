"""`wardflow dlq replay` on the real broker: a dead letter is re-driven after a fix and comes out
clean; a dry run writes nothing; reason, stage and time filters choose what is replayed."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from schemas.observations import Measurement, VitalSignsObserved, VitalSignsRecorded
from schemas.topics import EVENTS_CLEAN, EVENTS_DLQ, EVENTS_RAW, TopicSpec, full_name
from services.cleaning.app import build
from services.cleaning.config import CleaningSettings
from services.cli import app
from tests.support import RunningStage, collect, eventually, publish

NOW = datetime.now(UTC)


def vitals(patient: str, code: str, value: float, at: datetime = NOW) -> VitalSignsObserved:
    return VitalSignsObserved(
        event_id=uuid4(),
        occurred_at=at,
        recorded_at=NOW,
        source="ward-gateway",
        patient_id=patient,
        measurements=[Measurement(code=code, code_system="99LOCAL", value=value, unit="/min")],
    )


async def end_offsets(kafka_url: str, settings: CleaningSettings, spec: TopicSpec) -> int:
    """How many records a topic holds: the high watermarks of a fetch (the embedded broker's
    ListOffsets undercounts after a multi-record batch)."""
    name = full_name(spec, settings.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url, group_id=None, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        await consumer.topics()
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)

        async def fetched() -> bool:
            await consumer.getmany(timeout_ms=50)
            return all(consumer.highwater(tp) is not None for tp in partitions)

        await eventually(fetched, timeout_seconds=10)
        return sum(consumer.highwater(tp) or 0 for tp in partitions)
    finally:
        await consumer.stop()


async def wardflow(settings: CleaningSettings, *args: str) -> dict[str, tuple[int, int]]:
    """Run `wardflow dlq replay ARGS` in-process; (replayed, skipped) by reason, from its table."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10",
        "COLUMNS": "120",
    }
    # The command runs its own event loop (asyncio.run): give it a thread of its own.
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["dlq", "replay", *args, "--timeout", "20"], env=env
    )
    assert result.exit_code == 0, result.output
    rows = {}
    for line in result.output.splitlines():
        if match := re.search(r"([a-z_]+)\W+(\d+)\W+(\d+)", line):
            rows[match[1]] = (int(match[2]), int(match[3]))
    return rows


async def test_replays_a_dead_letter_after_the_code_map_is_fixed(
    settings_factory: Any, producer: Any, kafka: Any, tmp_path: Path
) -> None:
    codes = tmp_path / "local_codes.toml"
    codes.write_text('[codes."99LOCAL"]\nHF = "respiratory_rate"\n')  # the mistake: HF is pulse
    settings = await settings_factory(
        CleaningSettings,
        local_codes_file=str(codes),
        kafka_session_timeout_ms=3000,  # the restart below rejoins after ~1.8 x this on Tansu
    )
    misread = vitals("P1", "HF", 120.0)  # a respiratory rate of 120 is impossible
    future = vitals("P2", "HF", 20.0, at=NOW + timedelta(hours=1))
    async with RunningStage(build(settings)):
        await publish(producer, settings, EVENTS_RAW, misread, future)
        letters = await collect(kafka.url, settings, EVENTS_DLQ, lambda events: len(events) >= 2)
    letter = next(e for e in letters if e.reason == "impossible_value")
    assert letter.detail.startswith("respiratory_rate_per_min=120 ")
    raw_before = await end_offsets(kafka.url, settings, EVENTS_RAW)

    dry = await wardflow(settings, "--reason", "impossible_value", "--dry-run")
    assert (dry["impossible_value"], dry["future_event"], dry["total"]) == ((1, 0), (0, 1), (1, 1))
    first = min(e.failed_at for e in letters)
    after_last = (max(e.failed_at for e in letters) + timedelta(milliseconds=1)).isoformat()
    assert (await wardflow(settings, "--since", after_last))["total"] == (0, 2)
    assert (await wardflow(settings, "--until", first.isoformat()))["total"] == (0, 2)
    assert (await wardflow(settings, "--stage", "fusion"))["total"] == (0, 2)
    assert await end_offsets(kafka.url, settings, EVENTS_RAW) == raw_before, "nothing was sent"

    replayed = await wardflow(
        settings, "--reason", "impossible_value", "--stage", "cleaning",
        "--since", letter.failed_at.isoformat(), "--until", after_last,
    )  # fmt: skip
    assert (replayed["impossible_value"], replayed["future_event"]) == ((1, 0), (0, 1))
    assert await end_offsets(kafka.url, settings, EVENTS_RAW) == raw_before + 1

    codes.write_text('[codes."99LOCAL"]\nHF = "heart_rate"\n')  # the fix
    fixed = settings.model_copy(update={"local_codes_file": str(codes)})
    async with RunningStage(build(fixed)):  # the same group: it resumes after the two originals
        clean = await collect(kafka.url, settings, EVENTS_CLEAN, lambda events: len(events) >= 1)
    (recorded,) = clean
    assert isinstance(recorded, VitalSignsRecorded)
    assert recorded.event_id == misread.event_id, "the original event, with its own id"
    assert (recorded.vitals.heart_rate_bpm, recorded.vitals.respiratory_rate_per_min) == (
        120.0,
        None,
    )
    assert await end_offsets(kafka.url, settings, EVENTS_DLQ) == 2, "accepted, not dead-lettered"


async def test_limit_caps_the_replay_and_a_missing_topic_is_an_error(
    settings_factory: Any, producer: Any, kafka: Any
) -> None:
    settings = await settings_factory(CleaningSettings)
    impossible = [vitals(f"P{n}", "HR", 400.0) for n in range(3)]
    async with RunningStage(build(settings)):
        await publish(producer, settings, EVENTS_RAW, *impossible)
        await collect(kafka.url, settings, EVENTS_DLQ, lambda events: len(events) >= 3)
    raw_before = await end_offsets(kafka.url, settings, EVENTS_RAW)
    assert (await wardflow(settings, "--limit", "2"))["impossible_value"] == (2, 1)
    assert await end_offsets(kafka.url, settings, EVENTS_RAW) == raw_before + 2

    missing = settings.model_copy(update={"topic_prefix": f"absent{uuid4().hex[:8]}."})
    env = {"KAFKA_BOOTSTRAP_SERVERS": missing.kafka_bootstrap_servers,
           "WARDFLOW_TOPIC_PREFIX": missing.topic_prefix}  # fmt: skip
    result = await asyncio.to_thread(CliRunner().invoke, app, ["dlq", "replay"], env=env)
    assert result.exit_code == 2
    assert "events.dlq does not exist" in result.output
