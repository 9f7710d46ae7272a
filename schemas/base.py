"""The envelope every wardflow event carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC. Naive timestamps are refused."""

Identifier = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
"""An opaque identifier: letters, digits and . _ : - only, at most 64 characters."""


class Contract(BaseModel):
    """Base of every model in the contract: immutable, unknown fields ignored (additive changes)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Contract):
    """Fields common to every event on every topic.

    `event_id` is the idempotency key end to end; `occurred_at` is event time; `recorded_at` is when
    ingest (or the producing service) accepted or created it.
    """

    key_field: ClassVar[str] = "patient_id"

    event_id: UUID
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    source: Identifier
    schema_version: int = SCHEMA_VERSION

    def kafka_key(self) -> bytes:
        """The Kafka record key: the patient for clinical events, the ward for bed events."""
        return str(getattr(self, self.key_field)).encode()
