"""Bed matching: the layout's bays, sex policies and bed capabilities, and which beds a patient
may be given (`domain.eligible_beds`). Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from schemas.vocabulary import Band, LevelOfCare
from services.common.hospital import Bay, LayoutError, layout_from_dict, load_layout
from services.scheduler.domain import (
    allocation_restriction,
    bay_accepts,
    critical_care_match,
    eligible_beds,
    patient_profile,
    with_assessment,
)


def bayed(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "W",
        "level_of_care": "general",
        "bays": [
            {"id": "F", "sex": "female", "beds": 2},
            {"id": "M", "sex": "male", "beds": 2},
            {"id": "SR", "sex": "mixed", "beds": ["W-SR1", "W-SR2"]},
        ],
        "capabilities": {"W-02": ["telemetry"], "W-SR1": ["isolation"], "W-SR2": ["isolation"]},
        **overrides,
    }


WARD = layout_from_dict({"wards": [bayed()]}).wards[0]
OPEN = layout_from_dict(
    {
        "wards": [
            {
                "id": "O",
                "level_of_care": "icu",
                "beds": 3,
                "capabilities": {"O-02": ["ventilator"], "O-03": ["ventilator", "bariatric"]},
            }
        ]
    }
).wards[0]


def test_bays_give_the_ward_its_beds_in_bay_order_with_counted_names_running_on() -> None:
    assert WARD.beds == ("W-01", "W-02", "W-03", "W-04", "W-SR1", "W-SR2")
    assert WARD.bays == (
        Bay("F", "female", ("W-01", "W-02")),
        Bay("M", "male", ("W-03", "W-04")),
        Bay("SR", "mixed", ("W-SR1", "W-SR2")),
    )
    bay = WARD.bay_of("W-03")
    assert bay is not None and bay.id == "M"
    assert WARD.capabilities_of("W-SR1") == ("isolation",)
    assert WARD.capabilities_of("W-01") == ()
    assert (WARD.specialty, WARD.site) == (None, None)


def test_specialty_and_site_are_kept_and_plain_wards_work_as_before() -> None:
    ward = layout_from_dict(
        {"wards": [{"id": "A", "level_of_care": "general", "beds": 2, "specialty": "renal"}]}
    ).wards[0]
    assert (ward.beds, ward.bays, ward.capabilities) == (("A-01", "A-02"), (), ())
    assert (ward.specialty, ward.site) == ("renal", None)


def test_built_in_layout_shows_bays_and_capabilities() -> None:
    layout = load_layout("")
    ward_a, icu = layout.ward("WARD-A"), layout.ward("ICU")
    assert ward_a is not None and icu is not None
    assert [(bay.id, bay.sex, len(bay.beds)) for bay in ward_a.bays] == [
        ("A1", "female", 14),
        ("A2", "male", 14),
        ("SR", "mixed", 2),
    ]
    assert ward_a.beds == tuple(f"WARD-A-{n:02d}" for n in range(1, 31))  # names unchanged
    assert eligible_beds(ward_a, ["isolation"], None) == ("WARD-A-29", "WARD-A-30")
    assert "ventilator" in icu.capabilities_of("ICU-01")


@pytest.mark.parametrize(
    ("ward", "names"),
    [
        (bayed(beds=6), "wards[0].beds: give either beds or bays"),
        (bayed(bays=[]), "wards[0].bays"),
        (bayed(bays={"id": "F"}), "wards[0].bays"),
        (bayed(bays=["F"]), "wards[0].bays[0]"),
        (bayed(bays=[{"sex": "female", "beds": 1}]), "wards[0].bays[0].id"),
        (bayed(bays=[{"id": "F", "sex": "women", "beds": 1}]), "wards[0].bays[0].sex"),
        (bayed(bays=[{"id": "F", "beds": 1}]), "wards[0].bays[0].sex"),
        (bayed(bays=[{"id": "F", "sex": "female", "beds": 0}]), "wards[0].bays[0].beds"),
        (bayed(bays=[{"id": "F", "sex": "female"}]), "wards[0].bays[0].beds"),
        (
            bayed(bays=[{"id": "F", "sex": "female", "beds": 1}] * 2, capabilities={}),
            "wards[0].bays: bay ids repeat",
        ),
        (
            bayed(
                bays=[
                    {"id": "F", "sex": "female", "beds": ["x"]},
                    {"id": "M", "sex": "male", "beds": ["x"]},
                ],
                capabilities={},
            ),
            "wards[0].bays: bed names repeat",
        ),
        (bayed(capabilities={"W-99": ["isolation"]}), "wards[0].capabilities.W-99"),
        (bayed(capabilities={"W-01": ["jacuzzi"]}), "wards[0].capabilities.W-01"),
        (bayed(capabilities={"W-01": "isolation"}), "wards[0].capabilities.W-01"),
        (bayed(capabilities={"W-01": ["isolation", "isolation"]}), "wards[0].capabilities.W-01"),
        (bayed(capabilities=["W-01"]), "wards[0].capabilities"),
        (bayed(specialty=""), "wards[0].specialty"),
        (bayed(site=3), "wards[0].site"),
        ({"id": "A", "level_of_care": "general", "beds": ["A,1"]}, "wards[0].beds"),
    ],
    ids=[
        "beds and bays",
        "empty bays",
        "bays not a list",
        "bay not a table",
        "bay without id",
        "unknown bay sex",
        "bay without sex",
        "bay of zero beds",
        "bay without beds",
        "repeated bay id",
        "bed in two bays",
        "capability of an unknown bed",
        "unknown capability",
        "capabilities not a list",
        "repeated capability",
        "capabilities not a table",
        "empty specialty",
        "site not a string",
        "comma in a bed name",
    ],
)
def test_invalid_bays_and_capabilities_are_refused_naming_the_entry(
    ward: dict[str, Any], names: str
) -> None:
    with pytest.raises(LayoutError) as refused:
        layout_from_dict({"wards": [ward]})
    assert names in str(refused.value)


def test_unknown_capability_error_lists_the_vocabulary() -> None:
    with pytest.raises(LayoutError) as refused:
        layout_from_dict({"wards": [bayed(capabilities={"W-01": ["jacuzzi"]})]})
    for capability in ("isolation", "telemetry", "ventilator", "bariatric"):
        assert capability in str(refused.value)


@pytest.mark.parametrize(
    ("policy", "sex", "accepts"),
    [
        ("mixed", "female", True),
        ("mixed", "male", True),
        ("mixed", "other", True),
        ("mixed", "unknown", True),
        ("mixed", None, True),
        ("female", "female", True),
        ("female", "male", False),
        ("female", "other", False),
        ("female", "unknown", False),
        ("female", None, False),
        ("male", "male", True),
        ("male", "female", False),
        ("male", "other", False),
        ("male", None, False),
    ],
)
def test_bay_sex_policy(policy: Any, sex: Any, accepts: bool) -> None:
    assert bay_accepts(policy, sex) is accepts


@pytest.mark.parametrize(
    ("ward", "needs", "sex", "eligible"),
    [
        (WARD, [], "female", ("W-01", "W-02", "W-SR1", "W-SR2")),
        (WARD, [], "male", ("W-03", "W-04", "W-SR1", "W-SR2")),
        (WARD, [], "other", ("W-SR1", "W-SR2")),
        (WARD, [], "unknown", ("W-SR1", "W-SR2")),
        (WARD, [], None, ("W-SR1", "W-SR2")),
        (WARD, ["telemetry"], "female", ("W-02",)),
        (WARD, ["telemetry"], "male", ()),
        (WARD, ["isolation"], "male", ("W-SR1", "W-SR2")),
        (WARD, ["isolation", "telemetry"], "female", ()),
        (WARD, ["ventilator"], None, ()),
        (OPEN, [], None, ("O-01", "O-02", "O-03")),
        (OPEN, [], "female", ("O-01", "O-02", "O-03")),
        (OPEN, ["ventilator"], "male", ("O-02", "O-03")),
        (OPEN, ["ventilator", "bariatric"], None, ("O-03",)),
        (OPEN, ["bariatric", "bariatric"], None, ("O-03",)),
        (OPEN, ["isolation"], None, ()),
    ],
)
def test_eligible_beds(ward: Any, needs: Any, sex: Any, eligible: tuple[str, ...]) -> None:
    assert eligible_beds(ward, needs, sex) == eligible


def test_allocation_is_restricted_only_with_needs_or_bays() -> None:
    assert allocation_restriction(OPEN, [], "female") is None  # any bed, as before
    assert allocation_restriction(OPEN, ["ventilator"], None) == ("O-02", "O-03")
    assert allocation_restriction(WARD, [], None) == ("W-SR1", "W-SR2")


# --- Critical-care matching (`domain.critical_care_match`) ------------------------------------

CRITICAL = layout_from_dict(
    {
        "wards": [
            {"id": "MED", "level_of_care": "general", "site": "north", "beds": 2},
            {
                "id": "CARD",
                "level_of_care": "general",
                "specialty": "cardiology",
                "site": "south",
                "beds": 2,
            },
            {
                "id": "HDU-N",
                "level_of_care": "hdu",
                "site": "north",
                "bays": [
                    {"id": "F", "sex": "female", "beds": 2},
                    {"id": "M", "sex": "male", "beds": 2},
                ],
                "capabilities": {"HDU-N-02": ["telemetry"], "HDU-N-04": ["telemetry"]},
            },
            {"id": "HDU-S", "level_of_care": "hdu", "site": "south", "beds": 2},
            {
                "id": "CCU",
                "level_of_care": "hdu",
                "specialty": "cardiology",
                "site": "south",
                "beds": 1,
            },
            {"id": "ICU", "level_of_care": "icu", "beds": 2},
        ]
    }
)


def test_a_level_where_every_bed_fits_and_no_site_is_preferred_needs_no_match() -> None:
    assert critical_care_match(CRITICAL, LevelOfCare.ICU, "MED", None, []) is None


def test_bay_sex_policy_and_needs_choose_the_beds_and_the_site_is_preferred() -> None:
    match = critical_care_match(CRITICAL, LevelOfCare.HDU, "MED", "female", ["telemetry"])
    assert match == {
        "beds": {"HDU-N": ["HDU-N-02"]},  # female bay, telemetry; HDU-S has no telemetry
        "prefer": {"HDU-N": True},
        "needs": ["telemetry"],
    }


def test_a_patient_of_unknown_sex_gets_no_single_sex_bay() -> None:
    match = critical_care_match(CRITICAL, LevelOfCare.HDU, "MED", None, [])
    assert match is not None
    assert match["beds"] == {"HDU-S": ["HDU-S-01", "HDU-S-02"]}  # HDU-N is all single-sex bays


def test_a_specialty_unit_takes_only_its_specialty() -> None:
    cardiac = critical_care_match(CRITICAL, LevelOfCare.HDU, "CARD", "male", [])
    medical = critical_care_match(CRITICAL, LevelOfCare.HDU, "MED", "male", [])
    assert cardiac is not None and medical is not None
    assert set(cardiac["beds"]) == {"HDU-N", "HDU-S", "CCU"}
    assert cardiac["prefer"] == {"HDU-S": True, "CCU": True}  # the south site
    assert set(medical["beds"]) == {"HDU-N", "HDU-S"}  # not the cardiology unit


def test_when_no_unit_takes_the_specialty_every_unit_does() -> None:
    only_cardiac = layout_from_dict(
        {
            "wards": [
                {"id": "MED", "level_of_care": "general", "beds": 1},
                {"id": "CCU", "level_of_care": "hdu", "specialty": "cardiology", "beds": 1},
            ]
        }
    )
    assert critical_care_match(only_cardiac, LevelOfCare.HDU, "MED", None, []) is None


def test_the_profile_leaves_out_what_is_not_known() -> None:
    assert json.loads(
        patient_profile(sex=None, needs=[], band=None, aggregate=None, since=12.5)
    ) == {"since": 12.5}
    full = patient_profile(
        sex="male", needs=["telemetry", "isolation"], band=Band.HIGH, aggregate=0, since=1.0
    )
    assert json.loads(full) == {
        "sex": "male",
        "needs": ["isolation", "telemetry"],
        "band": "high",
        "aggregate": 0,  # zero is a value, not missing
        "since": 1.0,
    }
    assert with_assessment(json.loads(full), Band.MEDIUM, None) == {
        "sex": "male",
        "needs": ["isolation", "telemetry"],
        "band": "medium",
        "since": 1.0,
    }
