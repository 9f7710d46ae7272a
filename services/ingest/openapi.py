"""OpenAPI fragments for ingest: the request bodies senders post and the answers they get."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from schemas.generate import topic_schema
from schemas.topics import EVENTS_RAW

PROBLEM = {
    "type": "object",
    "required": ["index", "field", "problem"],
    "properties": {
        "index": {"type": "integer", "description": "Position of the event in the request."},
        "field": {"type": "string", "description": "The failing field, e.g. measurements[0].value"},
        "problem": {"type": "string"},
    },
}
REFUSAL = {
    "type": "object",
    "required": ["reason", "errors"],
    "properties": {
        "reason": {"type": "string", "description": "Machine-readable reason."},
        "errors": {"type": "array", "items": PROBLEM},
    },
}
ACCEPTED = {
    "type": "object",
    "required": ["accepted"],
    "properties": {"accepted": {"type": "array", "items": {"type": "string", "format": "uuid"}}},
}


@cache
def inbound_event_schema() -> dict[str, Any]:
    """The schema of one event as a sender posts it: no `recorded_at`/`source` (ingest sets
    them), `event_id` optional."""
    schema = copy.deepcopy(topic_schema(EVENTS_RAW))
    for definition in schema.get("$defs", {}).values():
        properties = definition.get("properties", {})
        if "recorded_at" not in properties:
            continue
        for owned in ("recorded_at", "source", "schema_version"):
            properties.pop(owned, None)
        definition["required"] = [
            "kind",
            *(
                name
                for name in definition.get("required", [])
                if name not in ("recorded_at", "source", "event_id", "schema_version", "kind")
            ),
        ]
        definition["additionalProperties"] = False
    return schema


def _rewrite_refs(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: (
                value.replace("#/$defs/", "#/components/schemas/Inbound")
                if key == "$ref" and isinstance(value, str)
                else _rewrite_refs(value)
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(item) for item in node]
    return node


def inbound_components() -> dict[str, Any]:
    """Component schemas (`Inbound<Event>`) the request bodies refer to."""
    defs = inbound_event_schema().get("$defs", {})
    return {f"Inbound{name}": _rewrite_refs(schema) for name, schema in defs.items()}


def events_request_body() -> dict[str, Any]:
    event = _rewrite_refs(
        {k: v for k, v in inbound_event_schema().items() if k not in ("$defs", "$schema", "title")}
    )
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        event,
                        {
                            "type": "object",
                            "required": ["events"],
                            "properties": {
                                "events": {"type": "array", "minItems": 1, "items": event}
                            },
                            "additionalProperties": False,
                        },
                    ],
                }
            }
        },
    }


def refusals(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": DESCRIPTIONS[status],
            "content": {"application/json": {"schema": REFUSAL}},
        }
        for status in statuses
    }


DESCRIPTIONS = {
    400: "Not valid JSON.",
    401: "No valid API key.",
    403: "The source may not send this kind of event.",
    413: "Body or number of events over the limit.",
    422: "An event breaks the contract; `errors` names each failing field. Nothing was written.",
    429: "Over the source's rate; see Retry-After.",
    503: "The broker did not confirm; nothing was written. Retry after Retry-After seconds.",
}

FHIR_BODY = {
    "required": True,
    "content": {"application/fhir+json": {"schema": {"type": "object"}}},
}
HL7_BODY = {
    "required": True,
    "content": {
        "application/hl7-v2": {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}
