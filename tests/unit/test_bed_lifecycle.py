"""The bed lifecycle and the hospital layout rules of the scheduler.

The expected lifecycle is written out here by hand, pair by pair, from the design text; it is
deliberately not derived from `ALLOWED_TRANSITIONS`, so a wrong edge there fails a test here.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from schemas.vocabulary import BedStatus, LevelOfCare
from services.common.hospital import LayoutError, layout_from_dict, load_layout
from services.scheduler.domain import (
    CRITICAL_CARE_LEVELS,
    allowed_from,
    can_transition,
    count_by_status,
    critical_care_level,
    wards_at_level,
)

AVAILABLE = BedStatus.AVAILABLE
RESERVED = BedStatus.RESERVED
OCCUPIED = BedStatus.OCCUPIED
DIRTY = BedStatus.DIRTY
CLEANING = BedStatus.CLEANING
BLOCKED = BedStatus.BLOCKED

# Every legal move, and only those; each group says why (docs/architecture.md, bed lifecycle).
LEGAL: frozenset[tuple[BedStatus, BedStatus]] = frozenset(
    {
        # The main cycle: available -> reserved -> occupied -> dirty -> cleaning -> available.
        (AVAILABLE, RESERVED),
        (RESERVED, OCCUPIED),
        (OCCUPIED, DIRTY),
        (DIRTY, CLEANING),
        (CLEANING, AVAILABLE),
        # "A reservation not confirmed in time expires back to available."
        (RESERVED, AVAILABLE),
        # Admission straight into a free bed (the allocation script occupies an available bed;
        # a reservation is optional).
        (AVAILABLE, OCCUPIED),
        # "blocked (with reason) from any non-occupied state".
        (AVAILABLE, BLOCKED),
        (RESERVED, BLOCKED),
        (DIRTY, BLOCKED),
        (CLEANING, BLOCKED),
        # An unblocked bed is cleaned before use: it comes back as dirty or straight into
        # cleaning, never available; an interrupted cleaning leaves the bed dirty.
        (BLOCKED, DIRTY),
        (BLOCKED, CLEANING),
        (CLEANING, DIRTY),
    }
)

ALL_PAIRS = list(itertools.product(BedStatus, BedStatus))


@pytest.mark.parametrize(
    ("current", "target", "legal"),
    [(current, target, (current, target) in LEGAL) for current, target in ALL_PAIRS],
    ids=[f"{current.value}->{target.value}" for current, target in ALL_PAIRS],
)
def test_transition_is_legal_exactly_as_in_the_lifecycle(
    current: BedStatus, target: BedStatus, legal: bool
) -> None:
    assert can_transition(current, target) is legal


@pytest.mark.parametrize("target", list(BedStatus), ids=lambda s: s.value)
def test_allowed_from_lists_every_legal_origin_of_a_target(target: BedStatus) -> None:
    expected = {current for current, to in LEGAL if to == target}
    assert allowed_from(target) == expected


@pytest.mark.parametrize("status", list(BedStatus), ids=lambda s: s.value)
def test_no_status_moves_to_itself(status: BedStatus) -> None:
    assert not can_transition(status, status)


def test_discharge_makes_a_bed_dirty_never_available() -> None:
    assert can_transition(OCCUPIED, DIRTY)
    assert not can_transition(OCCUPIED, AVAILABLE)
    assert not can_transition(OCCUPIED, CLEANING)


def test_an_occupied_bed_cannot_be_blocked() -> None:
    assert not can_transition(OCCUPIED, BLOCKED)
    assert OCCUPIED not in allowed_from(BLOCKED)


@pytest.mark.parametrize("start", list(BedStatus), ids=lambda s: s.value)
def test_every_status_can_get_back_to_available(start: BedStatus) -> None:
    reached, frontier = {start}, [start]
    while frontier:
        current = frontier.pop()
        for target in BedStatus:
            if target not in reached and can_transition(current, target):
                reached.add(target)
                frontier.append(target)
    assert AVAILABLE in reached


def test_count_by_status_names_every_status_with_zero_when_absent() -> None:
    counts = count_by_status([OCCUPIED, OCCUPIED, DIRTY])
    assert counts == {
        AVAILABLE: 0,
        RESERVED: 0,
        OCCUPIED: 2,
        DIRTY: 1,
        CLEANING: 0,
        BLOCKED: 0,
    }
    assert count_by_status([]) == dict.fromkeys(BedStatus, 0)


# --- the hospital layout -------------------------------------------------------------------


def ward(ward_id: str = "W1", **overrides: Any) -> dict[str, Any]:
    return {"id": ward_id, "level_of_care": "general", "beds": 2, **overrides}


def test_layout_names_count_beds_in_ward_order_and_keeps_listed_names() -> None:
    layout = layout_from_dict(
        {
            "version": "v7",
            "wards": [
                ward("A", beds=3, name="Ward A"),
                ward("B", level_of_care="icu", beds=["B-9", "B-1"]),
            ],
        }
    )
    assert layout.version == "v7"
    a, b = layout.wards
    assert (a.id, a.name, a.level_of_care, a.beds) == (
        "A",
        "Ward A",
        LevelOfCare.GENERAL,
        ("A-01", "A-02", "A-03"),
    )
    assert (b.name, b.level_of_care, b.beds) == ("B", LevelOfCare.ICU, ("B-9", "B-1"))
    assert layout.ward("B") is b
    assert layout.ward("C") is None


def test_layout_without_version_is_unversioned() -> None:
    assert layout_from_dict({"wards": [ward()]}).version == "unversioned"


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({}, "wards"),
        ({"wards": []}, "wards"),
        ({"wards": {"id": "W1"}}, "wards"),
        ({"wards": [ward(), ward("W2", level_of_care="palliative")]}, "wards[1].level_of_care"),
        ({"wards": [ward(level_of_care=None)]}, "wards[0].level_of_care"),
        ({"wards": [ward(id="")]}, "wards[0].id"),
        ({"wards": [ward(id=7)]}, "wards[0].id"),
        ({"wards": [{"level_of_care": "general", "beds": 1}]}, "wards[0].id"),
        ({"wards": [ward(beds=0)]}, "wards[0].beds"),
        ({"wards": [ward(beds=-3)]}, "wards[0].beds"),
        ({"wards": [ward(beds=True)]}, "wards[0].beds"),
        ({"wards": [ward(beds=2.0)]}, "wards[0].beds"),
        ({"wards": [ward(beds="2")]}, "wards[0].beds"),
        ({"wards": [ward(), ward("W2", beds=[])]}, "wards[1].beds"),
        ({"wards": [ward(beds=["W1-a", ""])]}, "wards[0].beds"),
        ({"wards": [ward(beds=["W1-a", 2])]}, "wards[0].beds"),
        ({"wards": [ward(beds=["W1-a", "W1-b", "W1-a"])]}, "wards[0].beds"),
        ({"wards": [ward("W1"), ward("W2"), ward("W1")]}, "ward ids repeat"),
    ],
    ids=[
        "no wards",
        "empty wards",
        "wards not a list",
        "unknown level of care",
        "missing level of care",
        "empty id",
        "id not a string",
        "missing id",
        "zero beds",
        "negative beds",
        "boolean beds",
        "float beds",
        "beds as text",
        "empty bed list",
        "empty bed name",
        "bed name not a string",
        "repeated bed name",
        "duplicate ward ids",
    ],
)
def test_invalid_layout_is_refused_naming_the_field(data: dict[str, Any], names: str) -> None:
    with pytest.raises(LayoutError) as refused:
        layout_from_dict(data)
    assert names in str(refused.value)


def test_unknown_level_of_care_error_lists_the_choices() -> None:
    with pytest.raises(LayoutError, match=r"^wards\[0\]\.level_of_care: ") as refused:
        layout_from_dict({"wards": [ward(level_of_care="palliative")]})
    for level in LevelOfCare:
        assert level.value in str(refused.value)


def test_ward_entry_that_is_not_a_table_is_refused_naming_it() -> None:
    with pytest.raises(LayoutError, match=r"wards\[0\]"):
        layout_from_dict({"wards": ["ED"]})


def test_built_in_layout_is_the_example_hospital_of_100_beds() -> None:
    layout = load_layout("")
    assert [w.id for w in layout.wards] == ["ED", "WARD-A", "WARD-B", "HDU", "ICU"]
    assert [w.level_of_care for w in layout.wards] == [
        LevelOfCare.EMERGENCY,
        LevelOfCare.GENERAL,
        LevelOfCare.GENERAL,
        LevelOfCare.HDU,
        LevelOfCare.ICU,
    ]
    every_bed = [bed for w in layout.wards for bed in w.beds]
    assert len(every_bed) == 100
    assert len(set(every_bed)) == 100
    icu = layout.ward("ICU")
    assert icu is not None
    assert icu.beds == tuple(f"ICU-{n:02d}" for n in range(1, 11))


# --- critical care: which wards can hold a reservation, and in which order --------------------

CARE_LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "ICU-B", "level_of_care": "icu", "beds": 2},
            {"id": "WARD-A", "level_of_care": "general", "beds": 2},
            {"id": "HDU", "level_of_care": "hdu", "beds": 1},
            {"id": "ICU-A", "level_of_care": "icu", "beds": 4},
            {"id": "ED", "level_of_care": "emergency", "beds": 1},
        ]
    }
)


def test_wards_at_a_level_are_sorted_by_id_for_the_tie_break() -> None:
    assert wards_at_level(CARE_LAYOUT, LevelOfCare.ICU) == ("ICU-A", "ICU-B")
    assert wards_at_level(CARE_LAYOUT, LevelOfCare.HDU) == ("HDU",)
    assert wards_at_level(CARE_LAYOUT, LevelOfCare.GENERAL) == ("WARD-A",)


def test_a_level_without_wards_has_none() -> None:
    general_only = layout_from_dict({"wards": [{"id": "W", "level_of_care": "general", "beds": 1}]})
    assert wards_at_level(general_only, LevelOfCare.HDU) == ()


@pytest.mark.parametrize(
    ("ward", "level"),
    [
        ("ICU-A", LevelOfCare.ICU),
        ("HDU", LevelOfCare.HDU),
        ("WARD-A", None),
        ("ED", None),
        ("NOWHERE", None),
    ],
)
def test_only_hdu_and_icu_wards_hold_critical_care_reservations(
    ward: str, level: LevelOfCare | None
) -> None:
    assert critical_care_level(CARE_LAYOUT, ward) == level


def test_critical_care_levels_are_hdu_then_icu() -> None:
    assert CRITICAL_CARE_LEVELS == (LevelOfCare.HDU, LevelOfCare.ICU)
