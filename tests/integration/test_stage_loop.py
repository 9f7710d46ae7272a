"""The stage loop's delivery on the embedded broker: outputs sent as one record batch per topic
partition (`Outbox`) land where `send()` would put them, in order; with a commit interval the
offsets and the stage's state are written once per interval, a graceful stop commits what was
processed, and a crash replays only what came after the last commit."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.observations import Measurement, VitalSignsObserved
from schemas.topics import EVENTS_RAW
from schemas.vocabulary import VitalParameter
from services.common.kafka import Outbox, ensure_topics, topic
from services.common.settings import ServiceSettings
from services.common.stage import Output, StageRunner, StateRecord
from tests.support import RunningStage, eventually, publish


def observed(patient: str) -> VitalSignsObserved:
    now = datetime.now(UTC)
    return VitalSignsObserved(
        event_id=uuid4(),
        occurred_at=now,
        recorded_at=now,
        source="test-monitor",
        patient_id=patient,
        measurements=[Measurement(parameter=VitalParameter.HEART_RATE, value=80, unit="/min")],
    )


async def read_all(kafka_url: str, name: str, partitions: int = 2) -> list[Any]:
    """Every record of the topic, read to its end, in partition order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        tps = [TopicPartition(name, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        records: list[Any] = []
        async with asyncio.timeout(30):
            while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
                for batch in (await consumer.getmany(timeout_ms=100)).values():
                    records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def committed(kafka_url: str, group: str, name: str, partitions: int = 2) -> int:
    """The group's committed offsets on the topic, summed over its partitions."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url, group_id=group)
    await consumer.start()
    try:
        total = 0
        for p in range(partitions):
            total += await consumer.committed(TopicPartition(name, p)) or 0
        return total
    finally:
        await consumer.stop()


async def test_outbox_puts_each_key_where_send_would_and_keeps_its_order(
    settings_factory: Any, producer: Any, kafka: Any
) -> None:
    settings: ServiceSettings = await settings_factory()
    by_send, by_outbox = topic(settings, EVENTS_RAW), f"{settings.topic_prefix}outbox"
    await ensure_topics(settings, {by_outbox: False}, partitions=2)
    keys = [f"patient-{n}".encode() for n in range(12)]
    for key in keys:  # the partition aiokafka's own send() chooses for each key
        await producer.send_and_wait(by_send, value=b"x", key=key)
    outbox = Outbox(producer)
    for n in range(240):  # interleaved keys, more than one record batch for some partitions
        outbox.add(by_outbox, keys[n % len(keys)], f"{n}".encode() + b" " * 200)
    outbox.add(by_outbox, b"pinned", b"to partition 1", partition=1)
    outbox.add(by_outbox, None, b"no key")
    futures = await outbox.send()
    assert len(outbox) == 0, "sent records are not kept"
    await asyncio.gather(*futures)

    expected = {r.key: r.partition for r in await read_all(kafka.url, by_send)}
    records = await read_all(kafka.url, by_outbox)
    assert len(records) == 242
    for key in keys:
        mine = [r for r in records if r.key == key]
        assert {r.partition for r in mine} == {expected[key]}, key
        numbers = [int(r.value.split()[0]) for r in mine]
        assert numbers == sorted(numbers) and len(numbers) == 20, "a key's records in order"
    assert [r.partition for r in records if r.key == b"pinned"] == [1]
    assert [r.value for r in records if r.key is None] == [b"no key"]


async def test_commit_interval_writes_state_and_offsets_once_per_interval(
    settings_factory: Any, producer: Any, kafka: Any, unique: str
) -> None:
    settings: ServiceSettings = await settings_factory()
    stage = f"interval{unique}"
    raw = topic(settings, EVENTS_RAW)
    state_topic = f"{settings.topic_prefix}state"
    await ensure_topics(settings, {state_topic: True}, partitions=1)
    handled: list[str] = []
    unsaved: set[str] = set()
    commits: list[float] = []

    async def handler(spec: Any, event: Any) -> list[Output]:
        handled.append(str(event.event_id))
        unsaved.add(event.patient_id)
        return []

    async def before_commit() -> list[StateRecord]:
        commits.append(time.monotonic())
        saved = [StateRecord(state_topic, 0, p.encode(), b"state") for p in sorted(unsaved)]
        unsaved.clear()
        return saved

    def runner(interval: float) -> StageRunner:
        return StageRunner(
            stage,
            settings,
            [EVENTS_RAW],
            handler,
            before_commit=before_commit,
            commit_interval_seconds=interval,
        )

    async with RunningStage(runner(1.5)):
        started = time.monotonic()
        for _ in range(10):  # ten batches or so, 0.1 s apart, three patients
            await publish(producer, settings, EVENTS_RAW, *(observed(f"P{n}") for n in range(3)))
            await asyncio.sleep(0.1)
        await eventually(reaches(handled, 30))
        # At most one commit per 1.5 s (the first 1.5 s after the loop started), not per batch.
        assert len(commits) <= (time.monotonic() - started) / 1.5 + 1
        await eventually(reaches(commits, 2), timeout_seconds=10)
        assert await committed(kafka.url, settings.group_for(stage), raw) == 30
        written = await read_all(kafka.url, state_topic, partitions=1)
        assert len(written) <= 3 * len(commits) < 30, "each patient's state once per commit"

    # A graceful stop writes the state and commits what was processed, interval or not.
    commits.clear()
    async with RunningStage(runner(600)):
        await publish(producer, settings, EVENTS_RAW, observed("P9"))
        await eventually(reaches(handled, 31))
    assert len(commits) == 1, "the state written once, at the stop"
    assert await committed(kafka.url, settings.group_for(stage), raw) == 31
    assert [r.key for r in await read_all(kafka.url, state_topic, partitions=1)][-1] == b"P9"

    # A crash (the task cancelled, no stop): the events after the last commit come again.
    crashing = runner(600)
    task = asyncio.create_task(crashing.run())
    await asyncio.wait_for(crashing.ready.wait(), timeout=30)
    await publish(producer, settings, EVENTS_RAW, *(observed("P5") for _ in range(4)))
    await eventually(reaches(handled, 35))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await committed(kafka.url, settings.group_for(stage), raw) == 31
    async with RunningStage(runner(600)):
        await eventually(reaches(handled, 39))
    assert handled[35:] == handled[31:35], "only the events after the last commit, again"


def reaches(items: list[Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(items) >= count

    return check
