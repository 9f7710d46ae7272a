"""Encode events to Kafka record values (JSON) and decode them back, per topic."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter

from schemas.topics import TopicSpec


@cache
def adapter_for(spec: TopicSpec) -> TypeAdapter[Any]:
    """A validator for every event a topic may carry, chosen by the `kind` field."""
    return _adapter(spec.events)


@cache
def reader_for(spec: TopicSpec, *readers: type[BaseModel]) -> TypeAdapter[Any]:
    """`adapter_for(spec)` with each reader model standing in for the topic's event of the same
    kind: a consumer's narrower view of an event (a tolerant reader), for fields it never uses
    and that cost time to validate. A reader model must be the event without those fields."""
    by_kind = {reader.model_fields["kind"].default: reader for reader in readers}
    return _adapter(
        tuple(by_kind.get(event.model_fields["kind"].default, event) for event in spec.events)
    )


def _adapter(events: tuple[type[BaseModel], ...]) -> TypeAdapter[Any]:
    if len(events) == 1:
        return TypeAdapter(events[0])
    union: Any = Union[events]  # noqa: UP007 - a runtime tuple of classes
    return TypeAdapter(Annotated[union, Field(discriminator="kind")])


def decode(spec: TopicSpec, value: bytes | str) -> Any:
    """Validate a record value against the topic's events; raises pydantic.ValidationError."""
    return adapter_for(spec).validate_json(value)


def decode_python(spec: TopicSpec, value: Any) -> Any:
    """Validate already-parsed JSON (a dict) against the topic's events."""
    return adapter_for(spec).validate_python(value)


def encode(event: BaseModel) -> bytes:
    """The record value for an event: compact JSON, UTF-8 (what `model_dump_json` writes, taken
    as the serializer's bytes instead of a str encoded again)."""
    return event.__pydantic_serializer__.to_json(event)
