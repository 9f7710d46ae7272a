"""What people ask of the scheduler through its API, as events on Kafka (scheduling.requests;
ward layout changes: hospital.layout).

Kafka is the source of truth: the API never writes Redis. A bed request, a cancellation, a block
or an unblock is published here and answered 202 only after the broker acknowledged it
(acks=all); the scheduler's stage then applies it like any other event. If the broker does not
confirm in time, nothing was requested: the API answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas.base import Event
from schemas.codec import encode
from schemas.topics import SCHEDULING_REQUESTS, TopicSpec
from services.common.kafka import topic
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
"""The Retry-After of a 503 (the broker did not confirm), as ingest's."""


class BrokerUnavailable(Exception):
    """The broker did not acknowledge the event in time; it may not have been written."""


class Publisher:
    """Publishes the API's events (to scheduling.requests unless told otherwise) and waits for
    the acknowledgement."""

    def __init__(
        self, producer: AIOKafkaProducer, settings: ServiceSettings, timeout_seconds: float
    ) -> None:
        self.producer = producer
        self.settings = settings
        self.topic = topic(settings, SCHEDULING_REQUESTS)
        self.timeout_seconds = timeout_seconds

    async def publish(self, event: Event, spec: TopicSpec | None = None) -> None:
        """Return once the broker has acknowledged `event` on `spec`'s topic (default
        scheduling.requests); raise BrokerUnavailable otherwise."""
        name = self.topic if spec is None else topic(self.settings, spec)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                await self.producer.send_and_wait(name, value=encode(event), key=event.kafka_key())
        except (KafkaError, TimeoutError) as error:
            kind = type(event).__name__
            log.warning("broker did not confirm error=%s kind=%s", type(error).__name__, kind)
            raise BrokerUnavailable() from None
