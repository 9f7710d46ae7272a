"""The envelope every wardflow event carries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _not_a_number(value: object) -> object:
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 date-time with a timezone, not a number")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_to_utc)]
"""A timezone-aware timestamp, normalised to UTC. Naive timestamps and numbers are refused."""

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
