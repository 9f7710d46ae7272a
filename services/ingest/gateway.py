"""The door every message goes through, whatever its format: authorise, remember, write.

Native JSON, FHIR and HL7 (HTTP or MLLP) all end here. The gateway pseudonymises and validates the
inbound items (`domain.prepare`), drops event ids this source already delivered, writes the rest to
`events.raw` with acks=all, and only then reports success. Answers to a repeated Idempotency-Key or
HL7 control id are replayed from memory without touching the broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import NAMESPACE_URL, uuid5

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge

from schemas.base import Event
from schemas.codec import encode
from schemas.topics import EVENTS_RAW
from services.common import metrics
from services.common.auth import plain_keys, read_sources_file
from services.common.kafka import BatchWriter
from services.ingest.config import IngestSettings
from services.ingest.domain import BatchRefused, Problem, prepare
from services.ingest.guards import RateLimiter, TtlMemory
from services.ingest.sources import Source, SourceRegistry, dev_sources, sources_from_toml

STAGE = "ingest"
log = logging.getLogger(__name__)
A = TypeVar("A")

DUPLICATES = Counter(
    "wardflow_ingest_duplicates_total",
    "Events or messages a source sent again within the idempotency window (absorbed).",
    ["channel"],
)

SOURCE_LAST_EVENT = Gauge(
    "wardflow_source_last_event_timestamp_seconds",
    "Unix time this ingest replica last accepted an event from the source (a configured sender:"
    " the name of its entry in the sources file); the time ingest started if it has sent none.",
    ["source"],
)


class BrokerUnavailable(Exception):
    """The broker did not confirm the write in time; nothing may be acknowledged."""


@dataclass(frozen=True)
class Remembered(Generic[A]):
    body_digest: str
    answer: A


def derived_id(source: str, *parts: object) -> str:
    """A deterministic event id: the same message from the same source gets the same id, so any
    replica and every downstream stage recognise a resend."""
    return str(uuid5(NAMESPACE_URL, "wardflow:ingest:" + ":".join([source, *map(str, parts)])))


def digest(body: bytes | str) -> str:
    data = body.encode() if isinstance(body, str) else body
    return hashlib.sha256(data).hexdigest()


def load_registry(settings: IngestSettings) -> SourceRegistry:
    sources = []
    if settings.sources_file:
        sources += sources_from_toml(
            read_sources_file(settings.sources_file),
            default_rate=settings.default_rate_per_second,
            default_burst=settings.default_burst,
        )
    sources += dev_sources(
        plain_keys(settings.api_keys),
        rate=settings.default_rate_per_second,
        burst=settings.default_burst,
    )
    return SourceRegistry(sources)


class Gateway:
    def __init__(
        self,
        settings: IngestSettings,
        producer: AIOKafkaProducer,
        raw_topic: str,
        registry: SourceRegistry,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.pseudonym_key.get_secret_value():
            raise ValueError("WARDFLOW_PSEUDONYM_KEY is required: patient identifiers are "
                             "pseudonymised at ingest")  # fmt: skip
        self.settings = settings
        self.producer = producer
        self.raw_topic = raw_topic
        self.registry = registry
        self.monotonic = monotonic
        self.wall_clock = wall_clock
        started = wall_clock()
        for source in registry.sources:
            if source.kinds:  # a sender, not only a client of the scheduler's API
                SOURCE_LAST_EVENT.labels(source.name).set(started)
        self._pseudonym_key = settings.pseudonym_key.get_secret_value().encode()
        self._rates = RateLimiter()
        window, capacity = settings.idempotency_window_seconds, settings.idempotency_max_entries
        self._delivered: TtlMemory[tuple[str, int], bool] = TtlMemory(window, capacity)
        self._answers: TtlMemory[str, Remembered[Any]] = TtlMemory(window, capacity)
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        self._writer = BatchWriter(producer, raw_topic)

    def rate_check(self, source: Source, count: int) -> None:
        """Raise 429 (with the wait in `problems`) when the source is over its rate."""
        wait = self._rates.retry_after(
            source.name, source.rate_per_second, source.burst, count, self.monotonic()
        )
        if wait > 0:
            text = (
                f"{count} events exceed the source's burst of {source.burst:g}"
                if wait == float("inf")
                else f"over {source.rate_per_second:g} events/s; retry in {wait:.1f} s"
            )
            retry = None if wait == float("inf") else max(1.0, wait)
            status = 413 if retry is None else 429
            raise BatchRefused(status, "rate_limited", [Problem(0, "(source)", text)], retry)

    async def submit(
        self,
        source: Source,
        items: list[Any],
        *,
        channel: str,
        default_id: Callable[[int], str] | None = None,
    ) -> list[str]:
        """Validate, check the source's rate, then durably write what this source has not
        delivered before; returns every event id (new and already delivered)."""
        now = datetime.now(UTC)
        events = prepare(
            items,
            source=source,
            now=now,
            pseudonym_key=self._pseudonym_key,
            **({"default_id": default_id} if default_id else {}),
        )
        if events:
            self.rate_check(source, len(events))
        clock = self.monotonic()
        fresh = [e for e in events if self._delivered.get(_key(source, e), clock) is None]
        metrics.EVENTS_IN.labels(STAGE, channel).inc(len(events))
        if len(fresh) < len(events):
            DUPLICATES.labels(channel).inc(len(events) - len(fresh))
        await self._write(fresh)
        self._delivered.put_many([_key(source, event) for event in fresh], True, clock)
        metrics.EVENT_TIME_LAG_SECONDS.labels(STAGE).observe_many(
            [max(0.0, (now - event.occurred_at).total_seconds()) for event in fresh]
        )
        metrics.EVENTS_OUT.labels(STAGE, EVENTS_RAW.name).inc(len(fresh))
        if events:  # accepted (a resend too: the source is alive)
            accepted_at = self.wall_clock()
            SOURCE_LAST_EVENT.labels(source.name).set(accepted_at)
            metrics.LAST_PROCESSED_TIMESTAMP.labels(STAGE).set(accepted_at)
        return [str(e.event_id) for e in events]

    async def once(
        self,
        key: str,
        body_digest: str,
        compute: Callable[[], Awaitable[tuple[A, bool]]],
    ) -> A:
        """The answer for an idempotency key: computed once, then replayed for `window` seconds.

        `compute` returns (answer, remember?): transient failures (broker down, rate limited)
        are not remembered, so a retry is tried afresh. A key reused with a different body is
        refused. Concurrent requests with one key share the first one's answer.
        """
        remembered = self._answers.get(key, self.monotonic())
        if remembered is not None:
            if remembered.body_digest != body_digest:
                problem = Problem(0, "Idempotency-Key", "was already used with a different body")
                raise BatchRefused(422, "idempotency_key_reused", [problem])
            DUPLICATES.labels("replayed_answer").inc()
            answer: A = remembered.answer
            return answer
        pending = self._in_flight.get(key)
        if pending is not None:
            shared: A = await asyncio.shield(pending)
            return shared
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            answer, remember = await compute()
            if remember:
                self._answers.put(key, Remembered(body_digest, answer), self.monotonic())
            future.set_result(answer)
            return answer
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._in_flight[key]

    async def _write(self, events: list[Event]) -> None:
        try:
            async with asyncio.timeout(self.settings.broker_timeout_seconds):
                await self._writer.write([(e.kafka_key(), encode(e)) for e in events])
        except (KafkaError, TimeoutError) as error:
            log.warning(
                "broker did not confirm error=%s events=%d", type(error).__name__, len(events)
            )
            raise BrokerUnavailable() from None


def _key(source: Source, event: Event) -> tuple[str, int]:
    # Plain str and int: the collector stops tracking such tuples, so a large memory of
    # delivered ids adds nothing to garbage-collection pauses.
    return (source.name, event.event_id.int)
