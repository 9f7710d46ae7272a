"""A faust transport whose stream consumer honours a configurable fetch wait.

faust-streaming hard-codes `fetch_max_wait_ms=1500` for its stream consumer. Brokers that answer a
fetch long-poll only when the wait expires (the embedded Tansu broker) would then add up to 1.5 s
per hop, so the wait comes from wardflow's settings instead.
"""

from __future__ import annotations

from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


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
