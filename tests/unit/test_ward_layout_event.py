"""A ward's layout as an event (WardLayoutSet): the layout file's rules apply, once, and every
refusal names the field at fault; a valid definition gives the same ward as the file would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.layout import LayoutError, WardDefinition, WardLayoutSet
from schemas.topics import HOSPITAL_LAYOUT
from services.common.hospital import layout_from_dict
from services.common.reviewed import where

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def event(**ward: Any) -> WardLayoutSet:
    beds = {} if "bays" in ward else {"beds": 2}  # a ward with bays gives no beds of its own
    definition = {"id": "W", "level_of_care": "general", **beds, **ward}
    return WardLayoutSet(
        event_id=uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        source="bed-manager",
        ward=definition,  # type: ignore[arg-type]
        changed_by="bed-manager",
    )


def refused_fields(error: ValidationError) -> list[str]:
    """Where each error is: the rules' own field (a LayoutError), else pydantic's location."""
    fields = []
    for e in error.errors(include_url=False):
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, LayoutError):
            fields.append(f"{where(e['loc'])}.{cause.field}")
        else:
            fields.append(where(e["loc"]))
    return fields


@pytest.mark.parametrize(
    ("ward", "field"),
    [
        ({"bays": [{"id": "B1", "sex": "other", "beds": 2}]}, "ward.bays[0].sex"),
        ({"beds": ["W-1", "W-2", "W-1"]}, "ward.beds"),
        ({"bays": [{"id": "F", "sex": "female", "beds": ["W-1"]},
                   {"id": "M", "sex": "male", "beds": ["W-1"]}]}, "ward.bays"),
        ({"capabilities": {"W-09": ["isolation"]}}, "ward.capabilities.W-09"),
        ({"capabilities": {"W-01": ["jacuzzi"]}}, "ward.capabilities.W-01[0]"),
        ({"level_of_care": "palliative"}, "ward.level_of_care"),
        ({"beds": 0}, "ward.beds"),
        ({"bays": [{"id": "B1", "sex": "mixed", "beds": 2}], "beds": 2}, "ward.beds"),
        ({"specialty": ""}, "ward.specialty"),
        ({"beds": ["W 1"]}, "ward.beds"),  # bed names are identifiers, as in bed events
        ({"beds": True}, "ward.beds"),
        ({"capabilites": {"W-01": ["isolation"]}}, "ward.capabilites"),  # a typo is refused
    ],
    ids=[
        "bad sex policy",
        "duplicate bed",
        "bed in two bays",
        "capability on an unknown bed",
        "unknown capability",
        "unknown level of care",
        "no beds",
        "beds and bays",
        "empty specialty",
        "bed name not an identifier",
        "beds neither a count nor names",
        "unknown field",
    ],
)  # fmt: skip
def test_a_bad_ward_definition_is_refused_naming_the_field(
    ward: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        event(**ward)
    assert field in refused_fields(refused.value)


def test_a_ward_with_bays_and_side_rooms_is_the_ward_the_file_would_give() -> None:
    entry = {
        "id": "WARD-C",
        "name": "Medical ward C",
        "level_of_care": "general",
        "specialty": "respiratory",
        "site": "north",
        "bays": [
            {"id": "C1", "sex": "female", "beds": 4},
            {"id": "SR", "sex": "mixed", "beds": ["WARD-C-SR1", "WARD-C-SR2"]},
        ],
        "capabilities": {"WARD-C-SR1": ["isolation"], "WARD-C-SR2": ["isolation", "telemetry"]},
    }
    changed = WardLayoutSet(
        event_id=uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        source="bed-manager",
        ward=WardDefinition.model_validate(entry),
        changed_by="bed-manager",
        reason="new_ward",
    )
    from_file = layout_from_dict({"wards": [entry]}).wards[0]
    assert changed.ward.as_ward() == from_file
    assert from_file.beds[-2:] == ("WARD-C-SR1", "WARD-C-SR2")
    assert changed.kafka_key() == b"WARD-C"
    # On the wire and back: the same ward (what every scheduler replica applies).
    decoded = decode(HOSPITAL_LAYOUT, encode(changed))
    assert isinstance(decoded, WardLayoutSet) and decoded.ward.as_ward() == from_file


def test_the_file_loader_and_the_event_share_one_set_of_rules() -> None:
    # The same mistake in a layout file names the ward entry, and the rules' field after it.
    with pytest.raises(LayoutError) as in_file:
        layout_from_dict({"wards": [{"id": "W", "level_of_care": "general", "beds": ["a", "a"]}]})
    with pytest.raises(ValidationError) as in_event:
        event(beds=["a", "a"])
    assert (in_file.value.field, in_file.value.problem) == ("wards[0].beds", "bed names repeat")
    (error,) = in_event.value.errors(include_url=False)
    cause = error["ctx"]["error"]
    assert (cause.field, cause.problem) == ("beds", "bed names repeat")
