"""Encode events to Kafka record values (JSON) and decode them back, per topic."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union

from pydantic import BaseModel, Field, TypeAdapter

from schemas.topics import TopicSpec


@cache
def adapter_for(spec: TopicSpec) -> TypeAdapter[Any]:
    """A validator for every event a topic may carry, chosen by the `kind` field."""
    if len(spec.events) == 1:
        return TypeAdapter(spec.events[0])
    union: Any = Union[spec.events]  # noqa: UP007 - a runtime tuple of classes
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
