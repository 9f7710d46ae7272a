"""The hot paths' value helpers: `evolve` copies a contract model as `model_copy` does, and a
`value_class` is a plain dataclass at run time (its immutability is mypy's to check)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from schemas.base import evolve, value_class
from services.fusion.domain import PatientRecord
from services.fusion.readings import NumericTrack

AT = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)


def test_evolve_gives_what_model_copy_gives() -> None:
    record = PatientRecord(patient_id="p1", version=2)
    track = NumericTrack(at=AT, source="monitor", event_id="e1", value=80.0)
    observations = record.observations.model_copy(update={"numeric": {"heart_rate_bpm": track}})
    changes = {"version": 3, "observations": observations}

    evolved = evolve(record, **changes)
    copied = record.model_copy(update=changes)

    assert evolved == copied
    assert (
        evolved.model_fields_set
        == copied.model_fields_set
        == {"patient_id", "version", "observations"}
    )
    assert evolved.model_dump_json() == copied.model_dump_json()
    assert record.version == 2, "the original is unchanged"
    assert evolved.observations is observations, "unchanged values are shared, not copied"


def test_evolve_refuses_a_field_the_model_does_not_have() -> None:
    with pytest.raises(TypeError, match="PatientRecord has no field versoin"):
        evolve(PatientRecord(patient_id="p1"), versoin=3)


def test_a_value_class_is_a_slotted_dataclass_compared_by_value() -> None:
    @value_class(kw_only=True)
    class Point:
        second: int
        value: float = 0.0

    point = Point(second=1, value=2.0)
    assert dataclasses.is_dataclass(point) and not hasattr(point, "__dict__")
    assert point == Point(second=1, value=2.0) != Point(second=1)
    assert dataclasses.replace(point, value=3.0) == Point(second=1, value=3.0)
    with pytest.raises(TypeError):
        Point(1, 2.0)  # type: ignore[misc]  # keyword-only, as declared
