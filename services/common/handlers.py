"""What a stage's handler and hooks hand the stage loop (`stage.StageRunner`), and what it tells
them: the outputs to produce, a refusal for the dead-letter topic, the stage's own written state,
the hooks' signatures and the partition of the record in hand."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol

from pydantic import BaseModel

from schemas.base import value_class
from schemas.topics import TopicSpec


@value_class
class Output:
    """One event a handler wants produced, and the topic it goes to."""

    spec: TopicSpec
    event: BaseModel


@value_class
class Encoded:
    """An event its handler wrote as a record value itself (a hot path: cleaning's vital signs,
    `services/cleaning/recorded.py`), with its Kafka key. Counted like an `Output`."""

    spec: TopicSpec
    key: bytes
    value: bytes


@value_class
class StateRecord:
    """A record of a stage's own state (fusion's per-patient changelog), written as it is to a
    named topic and partition. Not an event: not counted in `wardflow_events_out_total`."""

    topic: str
    partition: int
    key: bytes
    value: bytes | None


Outgoing = Output | Encoded | StateRecord


class WrittenState(Protocol):
    """A stage's own state, written out a little after it changes (fusion's changelog)."""

    def state_writes(self, now: float, everything: bool) -> tuple[list[StateRecord], float | None]:
        """The records to write now (`everything`: every change not written yet), and the
        `time.monotonic()` of the oldest change still not written after them (None: none)."""
        ...


class Rejected(Exception):
    """The event is well-formed but cannot be processed: it goes to the dead-letter topic."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


Handler = Callable[[TopicSpec, Any], Awaitable[Sequence[Output | Encoded]]]
Ticker = Callable[[frozenset[int]], Awaitable[Sequence[Outgoing]]]
"""Called every `tick_seconds` with the partitions (of the first input) this replica owns."""
Assigned = Callable[[frozenset[int]], Awaitable[Sequence[Outgoing]]]
"""Called when the group gives this replica its partitions (of the first input: all it owns from
then on), before any record of them is handled."""

RECORD_PARTITION: ContextVar[int] = ContextVar("record_partition", default=0)
"""The partition of the record being handled, for handlers that keep per-partition state."""
