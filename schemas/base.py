"""The envelope every wardflow event carries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, TypeVar, dataclass_transform, overload
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

SCHEMA_VERSION = 1
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


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


@overload
def value_class(cls: type[T], /) -> type[T]: ...
@overload
def value_class(*, kw_only: bool = False) -> Callable[[type[T]], type[T]]: ...
@dataclass_transform(frozen_default=True)
def value_class(cls: type[T] | None = None, /, *, kw_only: bool = False) -> Any:
    """A slotted dataclass that is frozen for the type checker and plain at run time.

    For the small values the hot paths build for every event (fusion's tracks, the stage
    loop's outputs). A frozen dataclass sets each field through `object.__setattr__` in its
    `__init__`: 1.8 us for a five-field track against 0.7 us for a plain one, and fusion builds
    about a dozen per event. mypy refuses any assignment to a field (it sees `frozen=True`), which
    is what frozen bought; at run time instances are not hashable (`__hash__` is None).
    """

    def make(cls: type[T]) -> type[T]:
        return dataclass(slots=True, kw_only=kw_only)(cls)

    return make if cls is None else make(cls)


def evolve(model: M, /, **changes: Any) -> M:
    """`model.model_copy(update=changes)` for a `Contract` (no extra fields, no private
    attributes): a new model sharing the unchanged field values, not validated. 1.2 us against
    model_copy's 3.5 us for fusion's patient record, which it copies twice per event."""
    cls = type(model)
    if not changes.keys() <= cls.__pydantic_fields__.keys():
        unknown = sorted(changes.keys() - cls.__pydantic_fields__.keys())
        raise TypeError(f"{cls.__name__} has no field {', '.join(unknown)}")
    new = cls.__new__(cls)
    object.__setattr__(new, "__dict__", {**model.__dict__, **changes})
    object.__setattr__(
        new, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys()
    )
    object.__setattr__(new, "__pydantic_extra__", None)
    object.__setattr__(new, "__pydantic_private__", None)
    return new
