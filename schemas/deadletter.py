"""Dead letters: an event a stage could not process, with why, kept for replay (events.dlq)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.base import Contract, UtcDatetime


class EventDeadLettered(Contract):
    """The original record, untouched, plus the stage and a machine-readable reason.

    Not an `Event` subclass: the original may not even be valid JSON, so it carries no event id of
    its own that could be trusted.
    """

    key_field: ClassVar[str] = "original_key"
    kind: Literal["EventDeadLettered"] = "EventDeadLettered"
    stage: str
    reason: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    detail: str
    failed_at: UtcDatetime
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None
    original_value: str
    original_value_encoding: Literal["utf-8", "base64"] = "utf-8"

    def kafka_key(self) -> bytes | None:
        return self.original_key.encode() if self.original_key is not None else None
