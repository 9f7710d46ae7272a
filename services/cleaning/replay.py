"""Re-drive dead letters: read events.dlq, and send each chosen original back where it came from.

`wardflow dlq replay` runs this after a fix (a corrected local code map, a wider clock skew, a
new release). events.dlq is read from the beginning without a consumer group, up to the end
offsets it had when the replay started, within a deadline. Each chosen letter's original record
is produced unchanged (its key, its bytes) to its original topic; the stage that refused it then
processes it again, and its dedupe window lets it through because a refused event is never
remembered as seen. A letter refused again is dead-lettered again, with a later `failed_at`, past
the end this replay reads to: a replay never chases its own letters.

Partition ends are found as `services.common.kafka.read_to_end` explains (the embedded broker's
ListOffsets can fall short); nothing is sent before every partition's end is known.

Never logs or prints a payload: dead letters carry patient data.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from schemas.codec import decode
from schemas.deadletter import EventDeadLettered
from schemas.topics import EVENTS_DLQ
from services.common.kafka import ReadDeadline, make_producer, make_reader, read_to_end, topic
from services.common.settings import ServiceSettings

UNREADABLE = "(unreadable letter)"


class ReplayError(Exception):
    """The replay cannot start (no dead-letter topic on this broker)."""


@dataclass(frozen=True)
class ReplayFilter:
    """Which letters to replay: every given condition must hold. `since` inclusive, `until` not."""

    reasons: frozenset[str] = frozenset()
    stage: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: EventDeadLettered) -> bool:
        return (
            (not self.reasons or letter.reason in self.reasons)
            and (self.stage is None or letter.stage == self.stage)
            and (self.since is None or letter.failed_at >= self.since)
            and (self.until is None or letter.failed_at < self.until)
        )


@dataclass
class ReplaySummary:
    """Counts by reason: replayed (or, in a dry run, would be replayed) and skipped."""

    replayed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    complete: bool = True  # False when the deadline came before the end offsets were reached

    @property
    def reasons(self) -> list[str]:
        return sorted(set(self.replayed) | set(self.skipped))


def original_bytes(letter: EventDeadLettered) -> bytes:
    """The original record value, exactly as the stage received it."""
    if letter.original_value_encoding == "base64":
        return base64.b64decode(letter.original_value)
    return letter.original_value.encode("utf-8")


async def replay(
    settings: ServiceSettings,
    chosen: ReplayFilter,
    *,
    dry_run: bool = False,
    limit: int | None = None,
    timeout_seconds: float = 60.0,
) -> ReplaySummary:
    """Replay the letters `chosen` selects (at most `limit`); `dry_run` only counts them."""
    summary, deadline = ReplaySummary(), time.monotonic() + timeout_seconds
    consumer = make_reader(settings)
    producer = None if dry_run else make_producer(settings)
    await consumer.start()
    try:
        if producer is not None:
            await producer.start()
        sent, dlq = [], topic(settings, EVENTS_DLQ)
        async with aclosing(_letters(consumer, dlq, deadline, summary)) as letters:
            async for letter in letters:
                if letter is None:
                    summary.skipped[UNREADABLE] += 1
                elif not chosen.matches(letter) or (
                    limit is not None and summary.replayed.total() >= limit
                ):
                    summary.skipped[letter.reason] += 1
                else:
                    summary.replayed[letter.reason] += 1
                    if producer is not None:  # letters name the topic without the deployment prefix
                        target = f"{settings.topic_prefix}{letter.original_topic}"
                        value, key = original_bytes(letter), letter.kafka_key()
                        sent.append(await producer.send(target, value=value, key=key))
        for future in sent:
            await future  # every replayed record acknowledged by the broker before we report
    finally:
        await consumer.stop()
        if producer is not None:
            await producer.stop()
    return summary


async def _letters(
    consumer: AIOKafkaConsumer, dlq: str, deadline: float, summary: ReplaySummary
) -> AsyncGenerator[EventDeadLettered | None, None]:
    """Every letter of `dlq` up to its end at the start (None: unreadable), within `deadline`."""
    if dlq not in await consumer.topics():
        raise ReplayError(f"topic {dlq} does not exist on this broker")
    try:
        async with aclosing(read_to_end(consumer, dlq, deadline)) as records:
            async for record in records:
                yield _letter(record.value)
    except ReadDeadline:
        summary.complete = False


def _letter(value: bytes | None) -> EventDeadLettered | None:
    try:
        letter: EventDeadLettered = decode(EVENTS_DLQ, value or b"")
    except ValidationError:
        return None
    return letter
