"""The stage loop's delivery on the embedded broker: outputs sent as one record batch per topic
partition (`Outbox`) land where `send()` would put them, in order; a stage's written state
(fusion's changelog) is written once per interval per record, the offsets are committed only
once the changes before them are written, a graceful stop writes and commits everything, and a
crash replays only what came after the last commit."""

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
from services.common.handlers import Output, StateRecord
from services.common.kafka import BatchWriter, Outbox, ensure_topics, make_producer, topic
from services.common.settings import ServiceSettings
from services.common.stage import StageRunner
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


async def test_a_batch_of_outputs_goes_to_the_broker_in_one_produce_request(
    settings_factory: Any, kafka: Any
) -> None:
    # 1,000 records of 600 bytes for one partition: aiokafka's default 16 KiB batch limit split
    # them into about 40 batches, each waiting for the previous one's acknowledgement.
    settings: ServiceSettings = await settings_factory()
    name = f"{settings.topic_prefix}big-batch"
    await ensure_topics(settings, {name: False}, partitions=2)
    producer = make_producer(settings)
    await producer.start()
    try:
        requests: list[str] = []
        send = producer.client.send

        def counting_send(node_id: Any, request: Any, **kwargs: Any) -> Any:
            requests.append(type(request).__name__)
            return send(node_id, request, **kwargs)

        producer.client.send = counting_send  # type: ignore[method-assign]
        outbox = Outbox(producer)
        for n in range(1_000):
            outbox.add(name, b"one patient", f"{n:06d}".encode() + b"x" * 594, partition=0)
        await asyncio.gather(*await outbox.send())
        assert requests.count("ProduceRequest") == 1, requests
    finally:
        await producer.stop()
    records = await read_all(kafka.url, name)
    assert [int(r.value[:6]) for r in records] == list(range(1_000))


async def test_batch_writer_carries_concurrent_writes_together_in_order(
    settings_factory: Any, producer: Any, kafka: Any
) -> None:
    settings: ServiceSettings = await settings_factory()
    name = f"{settings.topic_prefix}writer"
    await ensure_topics(settings, {name: False}, partitions=2)
    writer = BatchWriter(producer, name)
    keys = [f"patient-{n}".encode() for n in range(5)]

    async def request(number: int) -> None:  # as ingest writes one request's events
        await writer.write([(key, f"{number}".encode()) for key in keys])

    await asyncio.gather(*(request(n) for n in range(60)))  # all at once, open loop

    records = await read_all(kafka.url, name)
    assert len(records) == 60 * len(keys), "every write acknowledged and on the topic"
    for key in keys:
        numbers = [int(r.value) for r in records if r.key == key]
        assert numbers == list(range(60)), "a key's records in the order they were written"


class PatientState:
    """A toy `WrittenState`: which patients changed and when, written `interval` after."""

    def __init__(self, topic_name: str, interval: float) -> None:
        self.topic = topic_name
        self.interval = interval
        self.unwritten: dict[str, float] = {}
        self.written: list[str] = []

    def change(self, patient: str) -> None:
        self.unwritten.setdefault(patient, time.monotonic())

    def state_writes(self, now: float, everything: bool) -> tuple[list[StateRecord], float | None]:
        due = [p for p, at in self.unwritten.items() if everything or at <= now - self.interval]
        for patient in due:
            del self.unwritten[patient]
        self.written += due
        records = [StateRecord(self.topic, 0, p.encode(), b"state") for p in due]
        return records, min(self.unwritten.values(), default=None)


async def test_written_state_is_written_once_per_interval_and_commits_follow_it(
    settings_factory: Any, producer: Any, kafka: Any, unique: str
) -> None:
    settings: ServiceSettings = await settings_factory()
    stage = f"state{unique}"
    raw = topic(settings, EVENTS_RAW)
    state_topic = f"{settings.topic_prefix}state"
    await ensure_topics(settings, {state_topic: True}, partitions=1)
    handled: list[str] = []
    state = PatientState(state_topic, interval=1.5)

    async def handler(spec: Any, event: Any) -> list[Output]:
        handled.append(str(event.event_id))
        state.change(event.patient_id)
        return []

    def runner() -> StageRunner:
        return StageRunner(stage, settings, [EVENTS_RAW], handler, state=state)

    def group_committed() -> Awaitable[int]:
        return committed(kafka.url, settings.group_for(stage), raw)

    async with RunningStage(runner()):
        for _ in range(10):  # ten batches or so, 0.1 s apart, three patients
            await publish(producer, settings, EVENTS_RAW, *(observed(f"P{n}") for n in range(3)))
            await asyncio.sleep(0.1)
        await eventually(reaches(handled, 30))
        # Changed within the last 1.5 s: nothing written, so nothing committed.
        assert state.written == [] and await group_committed() == 0
        await eventually(reaches(state.written, 3), timeout_seconds=10)
        assert sorted(state.written) == ["P0", "P1", "P2"], "each patient once, not per event"

        async def all_committed() -> bool:
            return await group_committed() == 30

        await eventually(all_committed, timeout_seconds=10)
        on_topic = await read_all(kafka.url, state_topic, partitions=1)
        assert sorted(r.key for r in on_topic) == [b"P0", b"P1", b"P2"]

    # A graceful stop writes every change and commits what was processed, due or not.
    state.interval = 600
    async with RunningStage(runner()):
        await publish(producer, settings, EVENTS_RAW, observed("P9"))
        await eventually(reaches(handled, 31))
    assert state.written[-1] == "P9", "written at the stop"
    assert await group_committed() == 31

    # A crash (the task cancelled, no stop): the changes after the last write are not, and
    # their events come again; nothing else does.
    crashing = runner()
    task = asyncio.create_task(crashing.run())
    await asyncio.wait_for(crashing.ready.wait(), timeout=30)
    await publish(producer, settings, EVENTS_RAW, *(observed("P5") for _ in range(4)))
    await eventually(reaches(handled, 35))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await group_committed() == 31, "P5's change unwritten: its events not committed"
    async with RunningStage(runner()):
        await eventually(reaches(handled, 39))
    assert handled[35:] == handled[31:35], "only the events after the last commit, again"


def reaches(items: list[Any], count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(items) >= count

    return check


async def test_offsets_are_committed_at_most_once_per_interval_and_at_stop_and_revoke(
    settings_factory: Any, producer: Any, kafka: Any, unique: str
) -> None:
    settings: ServiceSettings = await settings_factory(commit_interval_seconds=2.0)
    stage = f"interval{unique}"
    raw = topic(settings, EVENTS_RAW)
    handled: list[str] = []

    async def handler(spec: Any, event: Any) -> list[Output]:
        handled.append(str(event.event_id))
        return []

    def runner(interval: float = 2.0) -> StageRunner:
        own = settings.model_copy(update={"commit_interval_seconds": interval})
        return StageRunner(stage, own, [EVENTS_RAW], handler)

    def group_committed() -> Awaitable[int]:
        return committed(kafka.url, settings.group_for(stage), raw)

    def committed_to(offsets: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return await group_committed() == offsets

        return check

    async with RunningStage(runner()):
        await publish(producer, settings, EVENTS_RAW, *(observed(f"P{n}") for n in range(4)))
        await eventually(reaches(handled, 4))
        await eventually(committed_to(4))  # the first commit is not held back
        await publish(producer, settings, EVENTS_RAW, *(observed(f"P{n}") for n in range(4)))
        await eventually(reaches(handled, 8))
        held_at = time.monotonic()
        assert await group_committed() == 4, "within the interval: held back"
        await eventually(committed_to(8), timeout_seconds=10)
        assert time.monotonic() - held_at < 4.0, "committed once the interval passed"
        await publish(producer, settings, EVENTS_RAW, observed("P0"))
        await eventually(reaches(handled, 9))
    assert await group_committed() == 9, "a graceful stop commits what was processed"

    # A crash within the interval: the events processed since the last commit come again.
    crashing = runner(interval=600)
    task = asyncio.create_task(crashing.run())
    await asyncio.wait_for(crashing.ready.wait(), timeout=30)
    await publish(producer, settings, EVENTS_RAW, observed("P1"))
    await eventually(reaches(handled, 10))
    await eventually(committed_to(10))  # the new member's first commit
    await publish(producer, settings, EVENTS_RAW, *(observed("P2") for _ in range(3)))
    await eventually(reaches(handled, 13))
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert await group_committed() == 10
    async with RunningStage(runner(interval=600)) as first:
        await eventually(reaches(handled, 16))
        assert handled[13:] == handled[10:13], "only the events after the last commit, again"
        await eventually(committed_to(13))
        await publish(producer, settings, EVENTS_RAW, *(observed(f"P{n}") for n in range(4)))
        await eventually(reaches(handled, 20))
        assert await group_committed() == 13, "held back by the interval"
        # A second member joins: the first gives up partitions and commits what it held.
        async with RunningStage(runner(interval=600)):
            await eventually(committed_to(17), timeout_seconds=20)
            await publish(producer, settings, EVENTS_RAW, *(observed(f"P{n}") for n in range(4)))
            await eventually(reaches(handled, 24), timeout_seconds=20)
        assert first.ready.is_set()
    assert len(set(handled[16:])) == len(handled[16:]) == 8, "nothing processed twice"
