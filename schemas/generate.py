"""The published contract for non-Python producers and consumers: JSON Schema per topic and an
AsyncAPI document, generated from the pydantic models (never edited by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from schemas.base import SCHEMA_VERSION
from schemas.codec import adapter_for
from schemas.topics import ALL_TOPICS, TopicSpec

GENERATED_DIR = Path(__file__).with_name("generated")


def topic_schema(spec: TopicSpec) -> dict[str, Any]:
    schema = adapter_for(spec).json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = spec.name
    schema["description"] = spec.description
    return schema


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in ALL_TOPICS:
        channel_id = spec.name.replace(".", "_")
        channels[channel_id] = {
            "address": spec.name,
            "description": f"{spec.description} Key: {spec.key}."
            + (" Compacted." if spec.compacted else ""),
            "messages": {
                event.__name__: {
                    "name": event.__name__,
                    "contentType": "application/json",
                    "payload": {"$ref": f"./{spec.name}.schema.json#/$defs/{event.__name__}"}
                    if len(spec.events) > 1
                    else {"$ref": f"./{spec.name}.schema.json"},
                }
                for event in spec.events
            },
        }
        operations[f"receive_{channel_id}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "wardflow events",
            "version": str(SCHEMA_VERSION),
            "description": "Kafka topics of wardflow. Changes within a schema version are "
            "additive; consumers ignore unknown fields.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
    }


def rendered() -> dict[str, str]:
    """File name -> exact file content of every generated contract file."""
    files = {f"{spec.name}.schema.json": topic_schema(spec) for spec in ALL_TOPICS}
    files["asyncapi.json"] = asyncapi()
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in files.items()}


def write(directory: Path = GENERATED_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in rendered().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        paths.append(path)
    return paths


def drifted(directory: Path = GENERATED_DIR) -> list[str]:
    """Generated files that are missing or differ from what the models produce now."""
    stale = []
    for name, content in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale
