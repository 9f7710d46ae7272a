"""The transport shell of a streaming stage: consume -> decode -> handle -> produce -> commit.

A stage supplies a handler (its domain logic, wrapped); this module owns the Kafka loop, the
dead-letter topic and the per-stage metrics. Delivery is at-least-once: offsets are committed only
after every output of a batch was acknowledged by the broker, so handlers must be idempotent by
`event_id`. A record that cannot be decoded or is refused goes to `events.dlq` with its reason and
never stops the partition; an infrastructure failure (broker, Redis) stops the process uncommitted,
and the supervisor restarts it.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import Gauge
from pydantic import BaseModel, ValidationError

from schemas.base import Event
from schemas.codec import decode, encode
from schemas.deadletter import EventDeadLettered
from schemas.topics import EVENTS_DLQ, TopicSpec
from services.common import metrics
from services.common.errors import summarise
from services.common.kafka import make_consumer, make_producer, topic
from services.common.lag import lag_by_topic, read_offsets
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

STAGE_READY = Gauge("wardflow_stage_ready", "1 once the stage has joined its group.", ["stage"])


class Keyed(Protocol):
    def kafka_key(self) -> bytes | None: ...


@dataclass(frozen=True)
class Output:
    """One event a handler wants produced, and the topic it goes to."""

    spec: TopicSpec
    event: BaseModel


class Rejected(Exception):
    """The event is well-formed but cannot be processed: it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Handler = Callable[[TopicSpec, Any], Awaitable[Sequence[Output]]]
Ticker = Callable[[frozenset[int]], Awaitable[Sequence[Output]]]
"""Called every `tick_seconds` with the partitions (of the first input) this replica owns."""

RECORD_PARTITION: ContextVar[int] = ContextVar("record_partition", default=0)
"""The partition of the record being handled, for handlers that keep per-partition state."""


def utc_now() -> datetime:
    return datetime.now(UTC)


class StageRunner:
    """Runs one stage's consume-process-produce loop until `stop()`."""

    def __init__(
        self,
        stage: str,
        settings: ServiceSettings,
        inputs: Sequence[TopicSpec],
        handler: Handler,
        *,
        transient_errors: tuple[type[BaseException], ...] = (),
        clock: Callable[[], datetime] = utc_now,
        prepare: Callable[[], Awaitable[Sequence[Output] | None]] | None = None,
        ticker: Ticker | None = None,
        tick_seconds: float = 1.0,
        after_batch: Callable[[], Awaitable[Sequence[Output]]] | None = None,
    ) -> None:
        self.stage = stage
        self.prepare = prepare
        self.ticker = ticker
        self.tick_seconds = tick_seconds
        self.after_batch = after_batch
        self.settings = settings
        self.handler = handler
        self.transient_errors = transient_errors
        self.clock = clock
        self._specs = {topic(settings, spec): spec for spec in inputs}
        # Per-event series, looked up once (labels() takes a lock and a lookup per call).
        self._events_in = {spec.name: metrics.EVENTS_IN.labels(stage, spec.name) for spec in inputs}
        self._event_time_lag = metrics.EVENT_TIME_LAG_SECONDS.labels(stage)
        metrics.declare_stage(stage, [spec.name for spec in inputs])
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        # The first offset of each partition of the batch being processed (its committed
        # position until the commit), for the consumer lag.
        self._in_flight: dict[TopicPartition, int] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = make_consumer(self.settings, self.settings.group_for(self.stage), *self._specs)
        producer = make_producer(self.settings)
        await producer.start()
        self.producer = producer
        try:
            if self.prepare is not None:  # e.g. restore or publish state, before joining the group
                prepared = await self.prepare() or []
                sent = [await self._send(producer, output) for output in prepared]
                if sent:
                    await asyncio.gather(*sent)
            await consumer.start()
            lag_watch = asyncio.create_task(self._watch_lag(consumer))
            try:
                next_tick = 0.0
                while not self._stopping.is_set():
                    batch = await consumer.getmany(timeout_ms=200)
                    self._in_flight = {tp: records[0].offset for tp, records in batch.items()}
                    if consumer.assignment() and not self.ready.is_set():
                        self.ready.set()
                        STAGE_READY.labels(self.stage).set(1)
                        log.info("stage ready partitions=%d", len(consumer.assignment()))
                    if self.ticker is not None and time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + self.tick_seconds
                        await self._tick(producer, consumer)
                    if not batch:
                        continue
                    pending = []
                    for records in batch.values():
                        for record in records:
                            pending.extend(await self._process(producer, record))
                    if self.after_batch is not None:  # e.g. one state snapshot per batch
                        for output in await self.after_batch():
                            pending.append(await self._send(producer, output))
                    if pending:
                        await asyncio.gather(*pending)
                    await consumer.commit()
                    self._in_flight = {}
            finally:
                STAGE_READY.labels(self.stage).set(0)
                lag_watch.cancel()
                await asyncio.gather(lag_watch, return_exceptions=True)
                await consumer.stop()
        finally:
            await producer.stop()

    async def _watch_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Every `consumer_lag_seconds`, set `wardflow_consumer_lag_records` per input topic
        (`lag.py`). It runs beside the loop, so a stage stuck in a handler shows its lag grow."""
        names = {name: spec.name for name, spec in self._specs.items()}
        every = self.settings.consumer_lag_seconds
        while True:
            try:
                async with asyncio.timeout(max(1.0, every)):
                    offsets = await read_offsets(consumer, self._in_flight)
            except (KafkaError, IllegalStateError, TimeoutError) as error:
                # A rebalance or a slow broker: keep the last value, try again next time.
                log.debug("consumer lag not read error=%s", type(error).__name__)
            else:
                for name, lag in lag_by_topic(offsets, names).items():
                    metrics.CONSUMER_LAG_RECORDS.labels(self.stage, names[name]).set(lag)
            await asyncio.sleep(every)

    async def _tick(self, producer: AIOKafkaProducer, consumer: AIOKafkaConsumer) -> None:
        """Let the ticker act on the owned partitions; its outputs are acknowledged before the
        loop goes on (they have no offset to commit: the ticker's state must say what it sent)."""
        assert self.ticker is not None
        first = next(iter(self._specs))
        owned = frozenset(tp.partition for tp in consumer.assignment() if tp.topic == first)
        outputs = await self.ticker(owned)
        sent = [await self._send(producer, output) for output in outputs]
        if sent:
            await asyncio.gather(*sent)

    async def _process(
        self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes]
    ) -> list[asyncio.Future[Any]]:
        spec = self._specs[record.topic]
        RECORD_PARTITION.set(record.partition)
        self._events_in[spec.name].inc()
        with metrics.processing(self.stage):
            try:
                event = decode(spec, record.value or b"")
            except ValidationError as error:
                return [
                    await self._dead_letter(producer, record, "invalid_event", summarise(error))
                ]
            if isinstance(event, Event):
                lag = (self.clock() - event.occurred_at).total_seconds()
                self._event_time_lag.observe(max(0.0, lag))
            try:
                outputs = await self.handler(spec, event)
            except Rejected as rejected:
                return [await self._dead_letter(producer, record, rejected.reason, rejected.detail)]
            except self.transient_errors:
                raise
            except Exception as error:  # a poison message must not stop the partition
                log.error(
                    "handler failed error=%s topic=%s partition=%d offset=%d",
                    type(error).__name__,
                    spec.name,
                    record.partition,
                    record.offset,
                )
                detail = f"unexpected {type(error).__name__} in {self.stage}"
                return [await self._dead_letter(producer, record, "processing_error", detail)]
            return [await self._send(producer, output) for output in outputs]

    async def _send(self, producer: AIOKafkaProducer, output: Output) -> asyncio.Future[Any]:
        key = output.event.kafka_key() if hasattr(output.event, "kafka_key") else None
        future = await producer.send(
            topic(self.settings, output.spec), value=encode(output.event), key=key
        )
        metrics.EVENTS_OUT.labels(self.stage, output.spec.name).inc()
        return future

    async def _dead_letter(
        self,
        producer: AIOKafkaProducer,
        record: ConsumerRecord[bytes, bytes],
        reason: str,
        detail: str,
    ) -> asyncio.Future[Any]:
        metrics.EVENTS_REJECTED.labels(self.stage, reason).inc()
        value = record.value or b""
        try:
            original = value.decode("utf-8")
            encoding: Literal["utf-8", "base64"] = "utf-8"
        except UnicodeDecodeError:
            original, encoding = base64.b64encode(value).decode(), "base64"
        letter = EventDeadLettered(
            stage=self.stage,
            reason=reason,
            detail=detail,
            failed_at=self.clock(),
            original_topic=self._specs[record.topic].name,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key=record.key.decode("utf-8", "replace") if record.key else None,
            original_value=original,
            original_value_encoding=encoding,
        )
        return await self._send(producer, Output(EVENTS_DLQ, letter))
