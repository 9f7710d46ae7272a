"""Kafka plumbing: topic creation and clients configured the same way in every service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Collection
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner

from schemas.topics import ALL_TOPICS, TopicSpec, full_name
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)


def topic(settings: ServiceSettings, spec: TopicSpec) -> str:
    return full_name(spec, settings.topic_prefix)


def make_producer(settings: ServiceSettings, *, linger_ms: int = 2) -> AIOKafkaProducer:
    """A producer whose acknowledged writes are durable on every in-sync replica (acks=all).

    Idempotence is off: the embedded broker does not support it, and every consumer is idempotent
    by `event_id` anyway.
    """
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        request_timeout_ms=10_000,
        max_batch_size=settings.kafka_producer_batch_bytes,
    )


def make_consumer(settings: ServiceSettings, group: str, *topics: str) -> AIOKafkaConsumer:
    """A consumer that commits only after processing (at-least-once)."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.kafka_session_timeout_ms // 5),
        max_poll_records=settings.kafka_max_batch,
    )


async def ensure_topics(
    settings: ServiceSettings, compacted_by_name: dict[str, bool], partitions: int
) -> None:
    """Create the named topics (name -> compacted?) that do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=name,
                num_partitions=partitions,
                replication_factor=settings.kafka_replication_factor,
                topic_configs={"cleanup.policy": "compact"} if compacted else {},
            )
            for name, compacted in compacted_by_name.items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                await admin.create_topics(wanted)
    finally:
        await admin.close()


async def create_topics(
    settings: ServiceSettings, partitions: int, specs: tuple[TopicSpec, ...] = ALL_TOPICS
) -> list[str]:
    """Create wardflow's topics if they do not exist yet; returns their names."""
    names = {topic(settings, spec): spec.compacted for spec in specs}
    await ensure_topics(settings, names, partitions)
    return list(names)


async def wait_for_broker(bootstrap_servers: str, timeout_seconds: float = 30.0) -> None:
    """Poll until the broker answers a metadata request, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_seconds
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=2000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as error:
            last_error = error
            await asyncio.sleep(0.2)
        finally:
            await admin.close()
    raise TimeoutError(f"Kafka at {bootstrap_servers} did not answer: {last_error!r}")


class Outbox:
    """Records to produce, gathered and then sent as one record batch per topic partition.

    Cheaper than one `send()` per record (one future per partition batch instead of one per
    record, and no per-record trip through the producer's accumulator) and keeps each key's
    records in the order they were added. The partition of a key is the one `send()` would choose
    (murmur2, as Kafka's Java client), so per-key ordering holds across both paths.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._pending: list[tuple[str, int | None, bytes | None, bytes | None]] = []

    def add(
        self, topic_name: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> None:
        """Queue one record; `partition` None: the key's partition (a random one if no key)."""
        self._pending.append((topic_name, partition, key, value))

    def __len__(self) -> int:
        return len(self._pending)

    async def send(self) -> list[asyncio.Future[Any]]:
        """Hand every queued record to the producer; the futures resolve on the broker's ack."""
        pending, self._pending = self._pending, []
        for topic_name in {record[0] for record in pending} - self._partitions.keys():
            self._partitions[topic_name] = sorted(await self.producer.partitions_for(topic_name))
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = {}
        for topic_name, partition, key, value in pending:
            if partition is None:
                partition = self._partition(topic_name, key)
            by_partition.setdefault((topic_name, partition), []).append((key, value))
        futures = []
        for (topic_name, partition), records in by_partition.items():
            batch = self.producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:  # batch full
                    futures.append(await self._send_batch(batch, topic_name, partition))
                    batch = self.producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)  # the first always fits
            futures.append(await self._send_batch(batch, topic_name, partition))
        return futures

    async def _send_batch(self, batch: Any, topic_name: str, partition: int) -> Any:
        # Closed, the producer sends it at once; an open batch would wait out the linger time
        # for more records (and hold back the partition's next batch meanwhile).
        batch.close()
        return await self.producer.send_batch(batch, topic_name, partition=partition)

    def _partition(self, topic_name: str, key: bytes | None) -> int:
        partitions = self._partitions[topic_name]
        if key is None:  # a keyless record goes to a random partition each time
            return int(self._partitioner(None, partitions, partitions))
        partition = self._partition_of.get((topic_name, key))  # murmur2 in Python: remember
        if partition is None:
            partition = int(self._partitioner(key, partitions, partitions))
            if len(self._partition_of) > 200_000:
                self._partition_of.clear()
            self._partition_of[(topic_name, key)] = partition
        return partition


class BatchWriter:
    """Writes keyed records to one topic for concurrent callers (ingest's requests), one record
    batch per partition per trip to the broker: while one trip is in flight, the records of the
    writes that arrive meanwhile wait, then go together (a group commit).

    aiokafka queues one batch per partition at a time, so a batch per caller would cap the
    writer at one caller's records per broker round trip: at 50 requests/s the bench's writer
    timed out once the embedded broker's round trip passed 20 ms (about 6,000 records/s).
    """

    def __init__(self, producer: AIOKafkaProducer, topic_name: str) -> None:
        self.topic = topic_name
        self._outbox = Outbox(producer)
        self._waiting: list[asyncio.Future[None]] = []
        self._trips: asyncio.Task[None] | None = None

    async def write(self, records: list[tuple[bytes | None, bytes]]) -> None:
        """Send every (key, value) and wait until the broker acknowledged all of them; raises
        the producer's error if the trip that carried them failed."""
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key, value in records:
            self._outbox.add(self.topic, key, value)
        self._waiting.append(acknowledged)
        if self._trips is None or self._trips.done():
            self._trips = asyncio.create_task(self._send_trips())
        await acknowledged

    async def _send_trips(self) -> None:
        """Trips to the broker until no write waits; each carries every record added so far."""
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            try:
                await asyncio.gather(*await self._outbox.send())
            except Exception as error:  # the producer's: each caller gets it
                for future in waiting:
                    if not future.done():  # a caller that gave up (its timeout) is gone
                        future.set_exception(error)
            else:
                for future in waiting:
                    if not future.done():
                        future.set_result(None)


class ReadDeadline(TimeoutError):
    """The end of the topic was not reached before the deadline."""


def make_reader(settings: ServiceSettings) -> AIOKafkaConsumer:
    """A consumer without a group, for reading a whole topic (replays, state restores)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_poll_records=settings.kafka_max_batch,
    )


async def read_to_end(
    consumer: AIOKafkaConsumer,
    topic_name: str,
    deadline: float,
    only: Collection[int] | None = None,
) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
    """Every record of every partition of `topic_name` (or of the partitions numbered `only`),
    from the beginning up to its end when the read started; raises `ReadDeadline` when `deadline`
    (monotonic) passes first.

    The end of each partition is the larger of the broker's end offset (ListOffsets) and the high
    watermark of the first fetch response: the embedded broker (Tansu) answers ListOffsets with
    the base offset of the last record batch plus one, short of the end when a batch held several
    records. Nothing is yielded before every partition's end is known.
    """
    partitions = {
        TopicPartition(topic_name, p)
        for p in consumer.partitions_for_topic(topic_name) or ()
        if only is None or p in only
    }
    if not partitions:
        return
    consumer.assign(list(partitions))
    await consumer.seek_to_beginning(*partitions)
    ends = await consumer.end_offsets(list(partitions))
    known: set[TopicPartition] = set()
    held: list[ConsumerRecord[bytes, bytes]] = []
    remaining = set(partitions)
    while remaining:
        if time.monotonic() > deadline:
            raise ReadDeadline(f"{topic_name} not read to its end in time")
        batch = await consumer.getmany(*remaining, timeout_ms=200)
        held.extend(record for records in batch.values() for record in records)
        for tp in partitions - known:
            highwater = consumer.highwater(tp)
            if highwater is not None:
                ends[tp] = max(ends[tp], highwater)
                known.add(tp)
        if known != partitions:
            continue  # hold every record until every end is known
        for record in held:
            if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                yield record
        held.clear()
        remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
