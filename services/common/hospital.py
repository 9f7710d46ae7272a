"""The hospital layout: wards, their level of care and their beds (TOML, validated at start).

Shared by the scheduler (which beds exist) and diagnosis (which wards are general wards, for the
closed loop to critical care). `WARDFLOW_HOSPITAL_LAYOUT` points at a hospital's own file; the
built-in example is `hospital.toml` beside this module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from schemas.vocabulary import LevelOfCare


class LayoutError(ValueError):
    """The hospital layout is invalid; the message says where."""


@dataclass(frozen=True)
class Ward:
    id: str
    name: str
    level_of_care: LevelOfCare
    beds: tuple[str, ...]


@dataclass(frozen=True)
class HospitalLayout:
    version: str
    wards: tuple[Ward, ...]

    def ward(self, ward_id: str) -> Ward | None:
        return next((w for w in self.wards if w.id == ward_id), None)


def bed_names(ward_id: str, count: int) -> tuple[str, ...]:
    return tuple(f"{ward_id}-{n:02d}" for n in range(1, count + 1))


def layout_from_dict(data: dict[str, Any]) -> HospitalLayout:
    """Build and validate a layout; every error names the ward and field at fault."""
    wards_data = data.get("wards")
    if not isinstance(wards_data, list) or not wards_data:
        raise LayoutError("layout: 'wards' must be a non-empty list")
    wards: list[Ward] = []
    for index, item in enumerate(wards_data):
        where = f"wards[{index}]"
        if not isinstance(item, dict):
            raise LayoutError(f"{where}: must be a table with id, level_of_care and beds")
        ward_id = item.get("id")
        if not isinstance(ward_id, str) or not ward_id:
            raise LayoutError(f"{where}.id: must be a non-empty string")
        try:
            level = LevelOfCare(str(item.get("level_of_care")))
        except ValueError:
            choices = ", ".join(level.value for level in LevelOfCare)
            raise LayoutError(f"{where}.level_of_care: must be one of {choices}") from None
        beds = item.get("beds")
        if isinstance(beds, int) and not isinstance(beds, bool) and beds > 0:
            names = bed_names(ward_id, beds)
        elif isinstance(beds, list) and beds and all(isinstance(b, str) and b for b in beds):
            names = tuple(beds)
        else:
            raise LayoutError(f"{where}.beds: a positive count or a list of bed names")
        if len(set(names)) != len(names):
            raise LayoutError(f"{where}.beds: bed names repeat")
        wards.append(Ward(ward_id, str(item.get("name", ward_id)), level, names))
    ids = [w.id for w in wards]
    if len(set(ids)) != len(ids):
        raise LayoutError("layout: ward ids repeat")
    return HospitalLayout(str(data.get("version", "unversioned")), tuple(wards))


def load_layout(path: str) -> HospitalLayout:
    """The hospital layout from a TOML file, or the built-in example when `path` is empty."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.common").joinpath("hospital.toml").read_text()
    return layout_from_dict(tomllib.loads(text))
