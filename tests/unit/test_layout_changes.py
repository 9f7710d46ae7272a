"""Layout changes, pure: the layout is the file with every change folded over it, and a change
that would take away a bed in use (or move a ward with patients to another level of care) is
refused, naming the beds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from schemas.layout import WardLayoutSet
from schemas.vocabulary import BedStatus, LevelOfCare
from services.common.hospital import layout_from_dict
from services.scheduler.layout import folded, leaving, refusal

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE = layout_from_dict(
    {
        "version": "file-1",
        "wards": [
            {"id": "A", "level_of_care": "general", "beds": 3},
            {"id": "B", "level_of_care": "hdu", "beds": 1},
        ],
    }
)
S = BedStatus


def change(**ward: Any) -> WardLayoutSet:
    return WardLayoutSet(
        event_id=uuid4(),
        occurred_at=NOW,
        recorded_at=NOW,
        source="bed-manager",
        ward=ward,  # type: ignore[arg-type]
        changed_by="bed-manager",
    )


def test_a_change_replaces_its_ward_whole_and_a_new_ward_comes_after_the_others() -> None:
    layout = folded(
        BASE,
        [
            change(id="A", level_of_care="general", beds=2),
            change(id="C", level_of_care="icu", beds=["C-1"], capabilities={"C-1": ["ventilator"]}),
            change(id="A", level_of_care="general", beds=["A-01", "A-SR"]),  # the later one wins
        ],
    )
    assert [w.id for w in layout.wards] == ["A", "B", "C"]
    assert layout.ward("A").beds == ("A-01", "A-SR")  # type: ignore[union-attr]
    assert layout.ward("C").capabilities_of("C-1") == ("ventilator",)  # type: ignore[union-attr]
    assert layout.version == "file-1"
    assert folded(BASE, []) == BASE


def test_beds_leaving_are_those_live_that_the_definition_lacks_in_ward_order() -> None:
    new = folded(BASE, [change(id="A", level_of_care="general", beds=["A-02"])]).ward("A")
    assert new is not None
    present = ["A-03", "A-02", "A-01", "A-old"]  # A-old: live, in no definition
    assert leaving(new, present, BASE.ward("A")) == ("A-01", "A-03", "A-old")


ONE_BED = {"id": "A", "level_of_care": "general", "beds": ["A-01"]}  # leave


@pytest.mark.parametrize(
    ("statuses", "ward", "reason", "beds"),
    [
        ({"A-01": S.OCCUPIED, "A-02": S.AVAILABLE, "A-03": S.BLOCKED}, ONE_BED, None, ()),
        ({"A-01": S.AVAILABLE, "A-02": S.OCCUPIED, "A-03": S.AVAILABLE}, ONE_BED,
         "beds_in_use", ("A-02",)),
        ({"A-01": S.AVAILABLE, "A-02": S.DIRTY, "A-03": S.RESERVED}, ONE_BED,
         "beds_in_use", ("A-02", "A-03")),
        ({"A-01": S.AVAILABLE, "A-02": S.CLEANING, "A-03": S.AVAILABLE}, ONE_BED,
         "beds_in_use", ("A-02",)),
        ({"A-01": S.OCCUPIED, "A-02": S.AVAILABLE, "A-03": S.AVAILABLE},
         {"id": "A", "level_of_care": "hdu", "beds": 3}, "level_of_care_in_use", ("A-01",)),
        ({"A-01": S.DIRTY, "A-02": S.BLOCKED, "A-03": S.CLEANING},
         {"id": "A", "level_of_care": "hdu", "beds": 3}, None, ()),
        ({"A-01": S.AVAILABLE, "A-02": S.AVAILABLE, "A-03": S.AVAILABLE},
         {"id": "A", "level_of_care": "general", "beds": 5}, None, ()),
    ],
    ids=[
        "leaving beds available or blocked",
        "an occupied bed would leave",
        "dirty and reserved beds would leave",
        "a bed in cleaning would leave",
        "level changes with a patient in a bed",
        "level changes with no patient and no reservation",
        "beds added",
    ],
)  # fmt: skip
def test_a_change_is_refused_while_beds_it_touches_are_in_use(
    statuses: dict[str, BedStatus], ward: dict[str, Any], reason: str | None, beds: tuple[str, ...]
) -> None:
    new = change(**ward).ward.as_ward()
    refused = refusal(BASE.ward("A"), new, statuses)
    if reason is None:
        assert refused is None
    else:
        assert refused is not None and (refused.reason, refused.beds) == (reason, beds)


def test_a_new_ward_over_live_beds_of_the_same_id_is_checked_too() -> None:
    new = change(id="N", level_of_care="general", beds=1).ward.as_ward()
    refused = refusal(None, new, {"N-01": S.AVAILABLE, "N-02": S.OCCUPIED})
    assert refused is not None and refused.beds == ("N-02",)
    assert refusal(None, new, {}) is None
    assert new.level_of_care == LevelOfCare.GENERAL
