"""A stage that acts on a few kinds of a topic skips the others without decoding them: the kind is
read from the encoded bytes (`stage._kind_of`), which is exact because every event's top-level
`kind` comes before any nested object in its encoding."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from schemas.admissions import PatientAdmitted
from schemas.codec import encode
from schemas.observations import VitalSigns, VitalSignsRecorded
from schemas.topics import ALL_TOPICS, EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS
from services.common.stage import _kind_of
from services.fusion.app import CLINICAL_EVENTS
from services.scheduler.app import HANDLED_KINDS

NOW = datetime.now(UTC)
ENVELOPE = {"event_id": uuid4(), "occurred_at": NOW, "recorded_at": NOW, "source": "test"}
SCALAR_ENVELOPE = {"event_id", "occurred_at", "recorded_at", "source", "schema_version"}


def test_the_kind_is_read_from_the_encoded_event() -> None:
    vitals = VitalSignsRecorded(patient_id="P1", vitals=VitalSigns(heart_rate_bpm=80), **ENVELOPE)
    admitted = PatientAdmitted(patient_id="P1", ward="W1", **ENVELOPE)
    assert _kind_of(encode(vitals)) == "VitalSignsRecorded"
    assert _kind_of(encode(admitted)) == "PatientAdmitted"


@pytest.mark.parametrize("value", [b"", None, b'{"kind": "PatientAdmitted"}', b"not json"])
def test_no_readable_kind_gives_none_so_the_record_is_decoded(value: bytes | None) -> None:
    assert _kind_of(value) is None


@pytest.mark.parametrize(
    "event_type", sorted({e for spec in ALL_TOPICS for e in spec.events}, key=lambda e: e.__name__)
)
def test_only_scalar_envelope_fields_come_before_kind(event_type: type) -> None:
    fields = list(event_type.model_fields)  # type: ignore[attr-defined]
    if "kind" in fields:
        assert set(fields[: fields.index("kind")]) <= SCALAR_ENVELOPE


def kinds_of(*specs: object) -> set[str]:
    return {event.__name__ for spec in specs for event in spec.events}  # type: ignore[attr-defined]


def test_the_kinds_stages_act_on_are_kinds_of_their_topics() -> None:
    assert kinds_of(EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS) >= HANDLED_KINDS
    assert kinds_of(EVENTS_CLEAN) >= CLINICAL_EVENTS
    assert "VitalSignsRecorded" not in HANDLED_KINDS, "the scheduler skips vital signs"
