"""The hospital layout: wards, their level of care and their beds (TOML, validated at start).

A ward may also name its `specialty` and `site`, group its beds into bays with a sex policy
(`[[wards.bays]]`: id, sex = female | male | mixed, beds = a count or a list of names; the ward's
beds are then the bays' beds, in bay order, and the ward gives no `beds` of its own) and give
beds capabilities (`[wards.capabilities]`: bed name -> list of isolation, telemetry, ventilator,
bariatric). Counted bed names run on across the ward's bays (`WARD-01`, `WARD-02`, ...).

Shared by the scheduler (which beds exist) and diagnosis (which wards are general wards, for the
closed loop to critical care). `WARDFLOW_HOSPITAL_LAYOUT` points at a hospital's own file; the
built-in example is `hospital.toml` beside this module.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

from schemas.vocabulary import CAPABILITIES, Capability, LevelOfCare

BaySex = Literal["female", "male", "mixed"]
"""A bay's sex policy: a single-sex bay takes patients of that sex only, a mixed bay anyone."""
BAY_SEXES: tuple[str, ...] = get_args(BaySex)


class LayoutError(ValueError):
    """The hospital layout is invalid; the message says where."""


@dataclass(frozen=True)
class Bay:
    id: str
    sex: BaySex
    beds: tuple[str, ...]


@dataclass(frozen=True)
class Ward:
    """A ward. `bays` is empty for a ward without bays (every bed open to every patient);
    `capabilities` lists (bed, its capabilities) for the beds that have any, in ward order."""

    id: str
    name: str
    level_of_care: LevelOfCare
    beds: tuple[str, ...]
    specialty: str | None = None
    site: str | None = None
    bays: tuple[Bay, ...] = ()
    capabilities: tuple[tuple[str, tuple[Capability, ...]], ...] = ()

    def bay_of(self, bed: str) -> Bay | None:
        return next((bay for bay in self.bays if bed in bay.beds), None)

    def capabilities_of(self, bed: str) -> tuple[Capability, ...]:
        return next((caps for name, caps in self.capabilities if name == bed), ())


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
        specialty, site = item.get("specialty"), item.get("site")
        for field, value in (("specialty", specialty), ("site", site)):
            if value is not None and (not isinstance(value, str) or not value):
                raise LayoutError(f"{where}.{field}: must be a non-empty string")
        if "bays" in item:
            if "beds" in item:
                raise LayoutError(f"{where}.beds: give either beds or bays, not both")
            bays = _bays(where, ward_id, item["bays"])
            names = tuple(bed for bay in bays for bed in bay.beds)
            if len(set(names)) != len(names):
                raise LayoutError(f"{where}.bays: bed names repeat across bays")
        else:
            bays = ()
            names = _beds(f"{where}.beds", ward_id, item.get("beds"), 1)
        capabilities = _capabilities(where, names, item.get("capabilities"))
        wards.append(
            Ward(
                ward_id,
                str(item.get("name", ward_id)),
                level,
                names,
                specialty=specialty,
                site=site,
                bays=bays,
                capabilities=capabilities,
            )
        )
    ids = [w.id for w in wards]
    if len(set(ids)) != len(ids):
        raise LayoutError("layout: ward ids repeat")
    return HospitalLayout(str(data.get("version", "unversioned")), tuple(wards))


def _beds(where: str, ward_id: str, beds: Any, first: int) -> tuple[str, ...]:
    """Bed names from a count (numbered from `first`) or a list of names."""
    if isinstance(beds, int) and not isinstance(beds, bool) and beds > 0:
        names = tuple(f"{ward_id}-{n:02d}" for n in range(first, first + beds))
    elif isinstance(beds, list) and beds and all(isinstance(b, str) and b for b in beds):
        names = tuple(beds)
    else:
        raise LayoutError(f"{where}: a positive count or a list of bed names")
    if any("," in name for name in names):
        raise LayoutError(f"{where}: a bed name may not contain a comma")
    if len(set(names)) != len(names):
        raise LayoutError(f"{where}: bed names repeat")
    return names


def _bays(where: str, ward_id: str, data: Any) -> tuple[Bay, ...]:
    if not isinstance(data, list) or not data:
        raise LayoutError(f"{where}.bays: must be a non-empty list of bays")
    bays: list[Bay] = []
    counted = 0  # counted bed names run on across the ward's bays
    for index, item in enumerate(data):
        at = f"{where}.bays[{index}]"
        if not isinstance(item, dict):
            raise LayoutError(f"{at}: must be a table with id, sex and beds")
        bay_id = item.get("id")
        if not isinstance(bay_id, str) or not bay_id:
            raise LayoutError(f"{at}.id: must be a non-empty string")
        sex = item.get("sex")
        if sex not in BAY_SEXES:
            raise LayoutError(f"{at}.sex: must be one of {', '.join(BAY_SEXES)}")
        names = _beds(f"{at}.beds", ward_id, item.get("beds"), counted + 1)
        if isinstance(item.get("beds"), int):
            counted += len(names)
        bays.append(Bay(bay_id, sex, names))
    ids = [bay.id for bay in bays]
    if len(set(ids)) != len(ids):
        raise LayoutError(f"{where}.bays: bay ids repeat")
    return tuple(bays)


def _capabilities(
    where: str, beds: tuple[str, ...], data: Any
) -> tuple[tuple[str, tuple[Capability, ...]], ...]:
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise LayoutError(f"{where}.capabilities: must be a table of bed name -> capabilities")
    for bed, caps in data.items():
        at = f"{where}.capabilities.{bed}"
        if bed not in beds:
            raise LayoutError(f"{at}: no such bed in the ward")
        if not isinstance(caps, list) or not all(c in CAPABILITIES for c in caps):
            choices = ", ".join(CAPABILITIES)
            raise LayoutError(f"{at}: a list of capabilities, each one of {choices}")
        if len(set(caps)) != len(caps):
            raise LayoutError(f"{at}: capabilities repeat")
    return tuple((bed, tuple(data[bed])) for bed in beds if data.get(bed))


def load_layout(path: str) -> HospitalLayout:
    """The hospital layout from a TOML file, or the built-in example when `path` is empty."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.common").joinpath("hospital.toml").read_text()
    return layout_from_dict(tomllib.loads(text))
