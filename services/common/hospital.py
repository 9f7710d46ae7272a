"""The hospital layout: wards, their level of care and their beds (TOML, validated at start).

A ward may also name its `specialty` and `site`, group its beds into bays with a sex policy
(`[[wards.bays]]`: id, sex = female | male | mixed, beds = a count or a list of names; the ward's
beds are then the bays' beds, in bay order, and the ward gives no `beds` of its own) and give
beds capabilities (`[wards.capabilities]`: bed name -> list of isolation, telemetry, ventilator,
bariatric). Counted bed names run on across the ward's bays (`WARD-01`, `WARD-02`, ...). The
rules for one ward are `schemas.layout.ward_from_dict`, shared with the `WardLayoutSet` event
that changes a ward while the scheduler runs (hospital.layout).

Shared by the scheduler (which beds exist) and diagnosis (which wards are general wards, for the
closed loop to critical care). `WARDFLOW_HOSPITAL_LAYOUT` points at a hospital's own file; the
built-in example is `hospital.toml` beside this module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from schemas.layout import Bay, LayoutError, Ward, ward_from_dict
from schemas.vocabulary import BAY_SEXES, BaySex

__all__ = [
    "BAY_SEXES",
    "Bay",
    "BaySex",
    "HospitalLayout",
    "LayoutError",
    "Ward",
    "bed_names",
    "layout_from_dict",
    "load_layout",
    "read_layout_file",
]


@dataclass(frozen=True)
class HospitalLayout:
    version: str
    wards: tuple[Ward, ...]

    def ward(self, ward_id: str) -> Ward | None:
        return next((w for w in self.wards if w.id == ward_id), None)

    def with_ward(self, ward: Ward) -> HospitalLayout:
        """This layout with `ward` in place of the ward of the same id, or added after the rest."""
        if self.ward(ward.id) is None:
            return replace(self, wards=(*self.wards, ward))
        return replace(self, wards=tuple(ward if w.id == ward.id else w for w in self.wards))


def bed_names(ward_id: str, count: int) -> tuple[str, ...]:
    return tuple(f"{ward_id}-{n:02d}" for n in range(1, count + 1))


def layout_from_dict(data: dict[str, Any]) -> HospitalLayout:
    """Build and validate a layout; every error names the ward and field at fault."""
    wards_data = data.get("wards")
    if not isinstance(wards_data, list) or not wards_data:
        raise LayoutError("layout", "'wards' must be a non-empty list")
    wards = [ward_from_dict(item, f"wards[{index}]") for index, item in enumerate(wards_data)]
    ids = [w.id for w in wards]
    if len(set(ids)) != len(ids):
        raise LayoutError("layout", "ward ids repeat")
    return HospitalLayout(str(data.get("version", "unversioned")), tuple(wards))


def read_layout_file(path: str) -> dict[str, Any]:
    """The layout file's TOML as a dict: a hospital's file, or the built-in example for ''."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.common").joinpath("hospital.toml").read_text()
    return tomllib.loads(text)


def load_layout(path: str) -> HospitalLayout:
    """The hospital layout from a TOML file, or the built-in example when `path` is empty."""
    return layout_from_dict(read_layout_file(path))
