"""faust plumbing: a transport whose stream consumer honours a configurable fetch wait, and the
consumer lag read from faust's consumer.

faust-streaming hard-codes `fetch_max_wait_ms=1500` for its stream consumer. Brokers that answer a
fetch long-poll only when the wait expires (the embedded Tansu broker) would then add up to 1.5 s
per hop, so the wait comes from wardflow's settings instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiokafka
import faust
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


async def consumer_lag(app: faust.App, topic_name: str) -> int:
    """Records of `topic_name` assigned to this worker and not committed yet (`lag.py`): per
    partition, the larger of the fetched high watermark and the broker's end offset, minus faust's
    committed offset (its position before the first commit)."""
    consumer = app.consumer
    assigned = sorted(tp for tp in consumer.assignment() if tp.topic == topic_name)
    if not assigned:
        return 0
    fetched = {tp: consumer.highwater(tp) for tp in assigned}
    broker = await consumer.highwaters(*assigned)
    # faust keeps what it committed (or found committed when assigned) per partition here
    committed: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    offsets = []
    for tp in assigned:
        done = committed.get(tp)
        if done is None:
            done = await consumer.position(tp)
        offsets.append(PartitionOffsets(tp.topic, fetched[tp], broker.get(tp), done))
    return lag_by_topic(offsets, [topic_name])[topic_name]
