"""faust plumbing: a transport whose stream consumer honours a configurable fetch wait, and the
consumer lag read from faust's consumer.

faust-streaming hard-codes `fetch_max_wait_ms=1500` for its stream consumer. Brokers that answer a
fetch long-poll only when the wait expires (the embedded Tansu broker) would then add up to 1.5 s
per hop, so the wait comes from wardflow's settings instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import aiokafka
import faust
from aiokafka import TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.lag import PartitionOffsets, lag_by_topic


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            # The constructor keeps the value here and hands it to its fetcher at start().
            assert hasattr(consumer, "_fetch_max_wait_ms"), "aiokafka changed: revisit transport"
            consumer._fetch_max_wait_ms = wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class TunedFetchApp(faust.App):
    """A faust App whose stream consumer waits at most `fetch_max_wait_ms` per fetch."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


class OffsetReader(Protocol):
    """The calls `consumer_lag` makes of the broker (an `AIOKafkaConsumer` without a group)."""

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]: ...


async def consumer_lag(consumer: Any, reader: OffsetReader, topic_name: str) -> int:
    """Records of `topic_name` assigned to this faust worker and not committed yet (`lag.py`).

    Per partition: the larger of the fetched high watermark (faust's `consumer.highwater`) and
    the broker's end offset, minus the offset faust committed (or found committed when it was
    assigned); where nothing was ever committed, the log's start, where faust began. The broker
    is asked through `reader`, this process's own client: never through faust's consumer thread,
    whose two method-queue workers also serve its fetches and commits.
    """
    assigned = sorted(tp for tp in consumer.assignment() if tp.topic == topic_name)
    if not assigned:
        return 0
    fetched = {tp: consumer.highwater(tp) for tp in assigned}  # reads state, no call
    partitions = [TopicPartition(tp.topic, tp.partition) for tp in assigned]
    ends = await reader.end_offsets(partitions)
    # faust keeps the committed offset per partition here (None until one is known)
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    unknown = [tp for tp in partitions if committed.get(tp) is None]
    starts = await reader.beginning_offsets(unknown) if unknown else {}
    offsets = []
    for tp in partitions:
        done = committed.get(tp)
        offsets.append(
            PartitionOffsets(
                tp.topic, fetched[tp], ends.get(tp), starts.get(tp) if done is None else done
            )
        )
    return lag_by_topic(offsets, [topic_name])[topic_name]
