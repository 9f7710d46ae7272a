"""The published contract stays in step with the models, and the registry is coherent."""

from __future__ import annotations

import json

import pytest

from schemas.generate import GENERATED_DIR, drifted, rendered
from schemas.topics import ALL_TOPICS


def test_generated_files_match_the_models() -> None:
    assert drifted() == [], "schemas/generated is stale: run `make schemas` and commit"


def test_every_topic_has_a_schema_and_an_asyncapi_channel() -> None:
    files = rendered()
    asyncapi = json.loads(files["asyncapi.json"])
    for spec in ALL_TOPICS:
        assert f"{spec.name}.schema.json" in files
        assert asyncapi["channels"][spec.name.replace(".", "_")]["address"] == spec.name
    assert GENERATED_DIR.name == "generated"


@pytest.mark.parametrize("spec", ALL_TOPICS, ids=[s.name for s in ALL_TOPICS])
def test_topic_names_are_context_dot_stream(spec) -> None:
    context, _, stream = spec.name.partition(".")
    assert context.isalpha() and stream.replace("_", "").isalpha() and "." not in stream


def test_every_event_names_its_kind_and_key() -> None:
    for spec in ALL_TOPICS:
        for event in spec.events:
            assert event.model_fields["kind"].default == event.__name__
            assert getattr(event, "key_field", None) in event.model_fields
