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
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import Gauge
from pydantic import ValidationError

from schemas.base import Event
from schemas.codec import decode, encode
from schemas.deadletter import EventDeadLettered
from schemas.topics import EVENTS_DLQ, TopicSpec
from services.common import metrics
from services.common.errors import summarise
from services.common.handlers import (
    RECORD_PARTITION,
    Assigned,
    Encoded,
    Handler,
    Outgoing,
    Output,
    Rejected,
    StateRecord,
    Ticker,
    WrittenState,
)
from services.common.kafka import Outbox, make_consumer, make_producer, topic
from services.common.lag import lag_by_topic, read_offsets
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

STAGE_READY = Gauge("wardflow_stage_ready", "1 once the stage has joined its group.", ["stage"])


_KIND = b'"kind":"'


def _kind_of(value: bytes | None) -> str | None:
    """The `kind` of an encoded event, read without decoding it (None: not found)."""
    if not value:
        return None
    start = value.find(_KIND)
    if start < 0:
        return None
    start += len(_KIND)
    end = value.find(b'"', start)
    return value[start:end].decode("ascii", "replace") if end > start else None


def _skipped(value: bytes | None, kinds: frozenset[str]) -> bool:
    """A record of a kind the stage does not act on (no kind found: not skipped, decoded)."""
    kind = _kind_of(value)
    return kind is not None and kind not in kinds


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
        before_commit: Callable[[], Awaitable[Sequence[Outgoing]]] | None = None,
        state: WrittenState | None = None,
        on_assigned: Assigned | None = None,
        kinds: Collection[str] | None = None,
        decoder: Callable[[TopicSpec, bytes], Any] = decode,
    ) -> None:
        """`prepare` runs once before the stage joins its group; `ticker` every `tick_seconds`;
        `before_commit` after each batch, its outputs acknowledged with the batch's before the
        offsets are committed (the scheduler's bed snapshots); `on_assigned` at every
        assignment, its outputs acknowledged before processing goes on. All their outputs are
        sent like the handler's.

        `state`: a stage whose state is written out a little after it changes (fusion writes a
        changed record at most once per interval, spread over time, not once per batch). Its
        writes go with each loop's outputs, and the offsets of a batch are committed only once
        every change made up to the end of that batch is written and acknowledged: a crash
        replays the events after the last commit onto state at least as recent as them.

        `kinds`: the event kinds the handler acts on (None: every kind); a record of another kind
        is counted and skipped without being decoded (a stage that reads a topic for a few of its
        kinds, as the scheduler reads events.clean).

        `decoder`: how a record value becomes an event (the topic's contract by default; fusion
        reads vital signs without the fields it never uses). Its ValidationError dead-letters
        the record."""
        self.stage = stage
        self.prepare = prepare
        self.ticker = ticker
        self.tick_seconds = tick_seconds
        self.before_commit = before_commit
        self.state = state
        # The offsets processed after each batch, with the time it ended, until they may be
        # committed: at once without `state`, else when every change made by then is written
        # (and then held in `_committable` until the commit interval has passed).
        self._checkpoints: deque[tuple[float, dict[TopicPartition, int]]] = deque()
        self._processed: dict[TopicPartition, int] = {}
        # Committable offsets held back until `commit_interval_seconds` after the last commit.
        self._committable: dict[TopicPartition, int] | None = None
        self._next_commit = 0.0
        self.on_assigned = on_assigned
        self._kinds = frozenset(kinds) if kinds is not None else None
        self._decode = decoder
        # Set while the partitions held are the ones `on_assigned` was told of: aiokafka may hand
        # out records of a new assignment before its listener has finished.
        self._assignment_settled = asyncio.Event()
        if on_assigned is None:
            self._assignment_settled.set()
        self.settings = settings
        self.handler = handler
        self.transient_errors = transient_errors
        self.clock = clock
        self._specs = {topic(settings, spec): spec for spec in inputs}
        # Per-event series, looked up once (labels() takes a lock and a lookup per call).
        self._events_in = {spec.name: metrics.EVENTS_IN.labels(stage, spec.name) for spec in inputs}
        self._event_time_lag = metrics.EVENT_TIME_LAG_SECONDS.labels(stage)
        self._events_out_series: dict[str, Any] = {}
        self._topic_names: dict[str, str] = {}
        metrics.declare_stage(stage, [spec.name for spec in inputs])
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.producer: AIOKafkaProducer | None = None
        # The first offset of each partition of the batch being processed (the position processed
        # to until the batch is done), for the consumer lag.
        self._in_flight: dict[TopicPartition, int] = {}

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        consumer = make_consumer(self.settings, self.settings.group_for(self.stage))
        producer = make_producer(self.settings)
        first = next(iter(self._specs))
        consumer.subscribe(
            list(self._specs), listener=_Assignments(self, consumer, producer, first)
        )
        outbox = Outbox(producer)  # the loop's; a rebalance listener's outputs get their own
        await producer.start()
        self.producer = producer
        try:
            if self.prepare is not None:  # e.g. restore or publish state, before joining the group
                await self._deliver(Outbox(producer), await self.prepare() or [])
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
                        await self._tick(outbox, consumer)
                    outputs: list[Outgoing] = []
                    if batch:
                        await self._assignment_settled.wait()
                        outputs.extend(await self._process_batch(batch))
                        if self.before_commit is not None:  # e.g. one state snapshot per batch
                            outputs.extend(await self.before_commit())
                        self._checkpoint(batch)
                    # With `state`, also without a batch: changes wait at most their interval.
                    writes, oldest_unwritten = self._state_writes(everything=False)
                    await self._deliver(outbox, [*outputs, *writes])
                    self._in_flight = {}
                    await self._commit_written(consumer, oldest_unwritten)
                await self._final_commit(outbox, consumer)  # what was processed is not redone
            finally:
                STAGE_READY.labels(self.stage).set(0)
                lag_watch.cancel()
                await asyncio.gather(lag_watch, return_exceptions=True)
                await consumer.stop()
        finally:
            await producer.stop()

    def _checkpoint(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Remember the offsets processed after this batch, with the time it ended."""
        for tp, records in batch.items():
            self._processed[tp] = records[-1].offset + 1
        self._checkpoints.append((time.monotonic(), dict(self._processed)))

    def _state_writes(self, *, everything: bool) -> tuple[list[StateRecord], float | None]:
        if self.state is None:
            return [], None  # every change is in the outputs already
        return self.state.state_writes(time.monotonic(), everything)

    async def _commit_written(
        self, consumer: AIOKafkaConsumer, oldest_unwritten: float | None
    ) -> None:
        """Commit the offsets of the latest batch whose changes are all written (without
        `state`: the batch just delivered), at most once per `commit_interval_seconds`."""
        while self._checkpoints and (
            oldest_unwritten is None or self._checkpoints[0][0] < oldest_unwritten
        ):
            self._committable = self._checkpoints.popleft()[1]
        now = time.monotonic()
        if self._committable is not None and now >= self._next_commit:
            offsets, self._committable = self._committable, None
            self._next_commit = now + self.settings.commit_interval_seconds
            await self._commit(consumer, offsets)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        assigned = consumer.assignment()  # a rebalance may have taken some partitions meanwhile
        owned = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if owned:
            await consumer.commit(owned)

    async def _final_commit(self, outbox: Outbox, consumer: AIOKafkaConsumer) -> None:
        """At a requested stop: write every change of the stage's state and commit what was
        processed, so that it is not replayed. A broker gone by then only means a replay at the
        next start."""
        try:
            writes, _ = self._state_writes(everything=True)
            await self._deliver(outbox, writes)
            await self._commit(consumer, self._processed)
        except KafkaError as error:
            log.warning("offsets not committed at stop error=%s", type(error).__name__)

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

    async def revoked(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what is ready to be committed (held back by the commit interval); the rest of
        what was processed is the next owner's to process again."""
        committable, self._committable = self._committable, None
        if committable is not None:
            try:
                await self._commit(consumer, committable)
            except KafkaError as error:
                log.warning("offsets not committed at revoke error=%s", type(error).__name__)
        self._checkpoints.clear()
        self._processed.clear()
        if self.on_assigned is not None:
            self._assignment_settled.clear()

    async def assigned(self, producer: AIOKafkaProducer, partitions: frozenset[int]) -> None:
        if self.on_assigned is None:
            return
        self._assignment_settled.clear()
        await self._deliver(Outbox(producer), await self.on_assigned(partitions))
        self._assignment_settled.set()

    async def _tick(self, outbox: Outbox, consumer: AIOKafkaConsumer) -> None:
        """Let the ticker act on the owned partitions; its outputs are acknowledged before the
        loop goes on (they have no offset to commit: the ticker's state must say what it sent)."""
        assert self.ticker is not None
        first = next(iter(self._specs))
        owned = frozenset(tp.partition for tp in consumer.assignment() if tp.topic == first)
        await self._deliver(outbox, await self.ticker(owned))

    async def _process_batch(
        self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> list[Outgoing]:
        """Every record of the batch, in partition order. The stage's series are updated once
        per batch: the processing time of each record and the event-time lag of each event
        (judged at the batch's start) are observed together at its end."""
        in_progress, seconds, last_processed = metrics.stage_series(self.stage)
        size = sum(len(records) for records in batch.values())
        in_progress.inc(size)
        outputs: list[Outgoing] = []
        durations: list[float] = []
        lags: list[float] = []
        now = self.clock()
        try:
            for tp, records in batch.items():
                spec = self._specs[tp.topic]
                RECORD_PARTITION.set(tp.partition)
                self._events_in[spec.name].inc(len(records))
                for record in records:
                    if self._kinds is not None and _skipped(record.value, self._kinds):
                        continue  # counted in, not timed: not an event this stage acts on
                    started = time.perf_counter()
                    try:
                        outputs.extend(await self._process(spec, record, now, lags))
                    finally:
                        durations.append(time.perf_counter() - started)
        finally:
            in_progress.dec(size)
            seconds.observe_many(durations)
            self._event_time_lag.observe_many(lags)
            last_processed.set(time.time())
        return outputs

    async def _process(
        self,
        spec: TopicSpec,
        record: ConsumerRecord[bytes, bytes],
        now: datetime,
        lags: list[float],
    ) -> Sequence[Outgoing]:
        try:
            event = self._decode(spec, record.value or b"")
        except ValidationError as error:
            return [self._dead_letter(record, "invalid_event", summarise(error))]
        if isinstance(event, Event):
            lags.append(max(0.0, (now - event.occurred_at).total_seconds()))
        try:
            return await self.handler(spec, event)
        except Rejected as rejected:
            return [self._dead_letter(record, rejected.reason, rejected.detail)]
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
            return [self._dead_letter(record, "processing_error", detail)]

    async def _deliver(self, outbox: Outbox, outputs: Sequence[Outgoing]) -> None:
        """Produce the outputs, one record batch per topic partition, and wait for the broker's
        acknowledgement of every one of them."""
        if not outputs:
            return
        events_out: dict[str, int] = {}
        for output in outputs:
            if isinstance(output, StateRecord):
                outbox.add(output.topic, output.key, output.value, output.partition)
                continue
            if isinstance(output, Encoded):
                outbox.add(self._topic_name(output.spec), output.key, output.value)
            else:
                key = output.event.kafka_key() if hasattr(output.event, "kafka_key") else None
                outbox.add(self._topic_name(output.spec), key, encode(output.event))
            events_out[output.spec.name] = events_out.get(output.spec.name, 0) + 1
        for name, count in events_out.items():
            self._events_out(name).inc(count)
        await asyncio.gather(*await outbox.send())

    def _topic_name(self, spec: TopicSpec) -> str:
        name = self._topic_names.get(spec.name)
        if name is None:
            name = self._topic_names[spec.name] = topic(self.settings, spec)
        return name

    def _events_out(self, topic_label: str) -> Any:
        series = self._events_out_series.get(topic_label)
        if series is None:
            series = metrics.EVENTS_OUT.labels(self.stage, topic_label)
            self._events_out_series[topic_label] = series
        return series

    def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str
    ) -> Output:
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
        return Output(EVENTS_DLQ, letter)


class _Assignments(ConsumerRebalanceListener):
    """Tells the runner the partitions (of its first input) each rebalance gives it."""

    def __init__(
        self,
        runner: StageRunner,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        first: str,
    ) -> None:
        self.runner = runner
        self.consumer = consumer
        self.producer = producer
        self.first = first  # the topic whose partitions the runner is told of

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self.runner.revoked(self.consumer)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = frozenset(tp.partition for tp in assigned if tp.topic == self.first)
        await self.runner.assigned(self.producer, partitions)
