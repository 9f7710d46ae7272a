"""Hospital layout context: one ward's definition, the rules it must follow, and the event that
sets it (hospital.layout, compacted, keyed by ward id).

A ward definition has the shape of a `[[wards]]` entry of the layout file: `id`, `name`,
`level_of_care`, optional `specialty` and `site`, and either `beds` (a count, named `<id>-01`,
`<id>-02`, ..., or a list of names) or `bays` (each `id`, `sex` = female | male | mixed, `beds`;
the ward's beds are then the bays' beds in bay order, counted names running on across bays), and
optional `capabilities` (bed name -> list of isolation, telemetry, ventilator, bariatric).

`ward_from_dict` holds the rules, once: the layout file's loader (`services/common/hospital.py`),
the event, the scheduler's API and `wardflow layout publish` all go through it. Every error names
the field at fault (`bays[0].sex: must be one of female, male, mixed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.base import Contract, Event, Identifier
from schemas.vocabulary import BAY_SEXES, CAPABILITIES, BaySex, Capability, LevelOfCare


class LayoutError(ValueError):
    """A ward definition or layout is invalid: `field` says where (`wards[1].bays[0].sex`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


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


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def ward_from_dict(item: Any, where: str = "") -> Ward:
    """One ward from its definition (a `[[wards]]` table); errors name the field, prefixed by
    `where` (`wards[2]` in a layout file, nothing for a single definition)."""
    if not isinstance(item, dict):
        raise LayoutError(where or "ward", "must be a table with id, level_of_care and beds")
    ward_id = item.get("id")
    if not isinstance(ward_id, str) or not ward_id:
        raise LayoutError(_at(where, "id"), "must be a non-empty string")
    try:
        level = LevelOfCare(str(item.get("level_of_care")))
    except ValueError:
        choices = ", ".join(level.value for level in LevelOfCare)
        raise LayoutError(_at(where, "level_of_care"), f"must be one of {choices}") from None
    specialty, site = item.get("specialty"), item.get("site")
    for field, value in (("specialty", specialty), ("site", site)):
        if value is not None and (not isinstance(value, str) or not value):
            raise LayoutError(_at(where, field), "must be a non-empty string")
    if "bays" in item:
        if "beds" in item:
            raise LayoutError(_at(where, "beds"), "give either beds or bays, not both")
        bays = _bays(where, ward_id, item["bays"])
        names = tuple(bed for bay in bays for bed in bay.beds)
        if len(set(names)) != len(names):
            raise LayoutError(_at(where, "bays"), "bed names repeat across bays")
    else:
        bays = ()
        names = _beds(_at(where, "beds"), ward_id, item.get("beds"), 1)
    capabilities = _capabilities(where, names, item.get("capabilities"))
    return Ward(
        ward_id,
        str(item.get("name", ward_id)),
        level,
        names,
        specialty=specialty,
        site=site,
        bays=bays,
        capabilities=capabilities,
    )


def _beds(where: str, ward_id: str, beds: Any, first: int) -> tuple[str, ...]:
    """Bed names from a count (numbered from `first`) or a list of names."""
    if isinstance(beds, int) and not isinstance(beds, bool) and beds > 0:
        names = tuple(f"{ward_id}-{n:02d}" for n in range(first, first + beds))
    elif isinstance(beds, list) and beds and all(isinstance(b, str) and b for b in beds):
        names = tuple(beds)
    else:
        raise LayoutError(where, "a positive count or a list of bed names")
    if any("," in name for name in names):
        raise LayoutError(where, "a bed name may not contain a comma")
    if len(set(names)) != len(names):
        raise LayoutError(where, "bed names repeat")
    return names


def _bays(where: str, ward_id: str, data: Any) -> tuple[Bay, ...]:
    if not isinstance(data, list) or not data:
        raise LayoutError(_at(where, "bays"), "must be a non-empty list of bays")
    bays: list[Bay] = []
    counted = 0  # counted bed names run on across the ward's bays
    for index, item in enumerate(data):
        at = f"{_at(where, 'bays')}[{index}]"
        if not isinstance(item, dict):
            raise LayoutError(at, "must be a table with id, sex and beds")
        bay_id = item.get("id")
        if not isinstance(bay_id, str) or not bay_id:
            raise LayoutError(f"{at}.id", "must be a non-empty string")
        sex = item.get("sex")
        if sex not in BAY_SEXES:
            raise LayoutError(f"{at}.sex", f"must be one of {', '.join(BAY_SEXES)}")
        names = _beds(f"{at}.beds", ward_id, item.get("beds"), counted + 1)
        if isinstance(item.get("beds"), int):
            counted += len(names)
        bays.append(Bay(bay_id, sex, names))
    ids = [bay.id for bay in bays]
    if len(set(ids)) != len(ids):
        raise LayoutError(_at(where, "bays"), "bay ids repeat")
    return tuple(bays)


def _capabilities(
    where: str, beds: tuple[str, ...], data: Any
) -> tuple[tuple[str, tuple[Capability, ...]], ...]:
    if data is None:
        return ()
    field = _at(where, "capabilities")
    if not isinstance(data, dict):
        raise LayoutError(field, "must be a table of bed name -> capabilities")
    for bed, caps in data.items():
        at = f"{field}.{bed}"
        if bed not in beds:
            raise LayoutError(at, "no such bed in the ward")
        if not isinstance(caps, list) or not all(c in CAPABILITIES for c in caps):
            choices = ", ".join(CAPABILITIES)
            raise LayoutError(at, f"a list of capabilities, each one of {choices}")
        if len(set(caps)) != len(caps):
            raise LayoutError(at, "capabilities repeat")
    return tuple((bed, tuple(data[bed])) for bed in beds if data.get(bed))


# --- The contract: a ward's definition on the wire ---------------------------------------------


def _count_or_names(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """One error for `beds`, named after the field (not one per member of the union)."""
    try:
        return handler(value)
    except ValidationError:
        raise PydanticCustomError(
            "bed_count_or_names",
            "a count, or a list of bed names (letters, digits and . _ : - only)",
        ) from None


Beds = Annotated[
    Annotated[int, Field(strict=True, description="How many beds, named <ward>-01, ...")]
    | list[Identifier],
    WrapValidator(_count_or_names),
]


class BayDefinition(Contract):
    """A bay of a ward: `beds` is a count (names run on across the ward's bays) or names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier
    sex: BaySex
    beds: Beds


class WardDefinition(Contract):
    """One ward, whole, in the shape of a `[[wards]]` entry of the hospital layout file.

    Unknown fields are refused, not ignored: a definition replaces the ward, so a misspelt field
    would silently drop what it meant to say. `ward_from_dict`'s rules apply (either `beds` or
    `bays`; bed names unique in the ward and without commas; capabilities only for the ward's
    beds); bed and ward names are identifiers, as in every bed event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Identifier
    name: str | None = Field(default=None, max_length=200, description="Default: the id.")
    level_of_care: LevelOfCare
    specialty: str | None = Field(default=None, max_length=200)
    site: str | None = Field(default=None, max_length=200)
    beds: Beds | None = None
    bays: list[BayDefinition] | None = None
    capabilities: dict[str, list[Capability]] | None = Field(
        default=None, description="Bed name -> what it offers."
    )

    @model_validator(mode="after")
    def _follows_the_layout_rules(self) -> Self:
        self.as_ward()
        return self

    def entry(self) -> dict[str, Any]:
        """The definition as a `[[wards]]` table (fields left out stay out)."""
        fields = set(WardDefinition.model_fields)
        return self.model_dump(mode="json", include=fields, exclude_none=True)

    def as_ward(self) -> Ward:
        """The ward this defines; raises LayoutError naming the field at fault."""
        return ward_from_dict(self.entry())


LayoutChangeReason = Literal[
    "new_ward", "capacity", "reconfiguration", "infection_control", "correction", "other"
]
"""Why a ward's layout changed, as a code (no free text: the topic is kept forever)."""


class WardLayoutSet(Event):
    """A ward's layout is set: `ward` is its whole new definition, replacing the one from the
    layout file or an earlier WardLayoutSet, or adding the ward (hospital.layout, compacted,
    keyed by ward id). Every scheduler replica applies every such event; beds that leave the
    ward are removed only when available or blocked.

    `changed_by` is the role that made the change (the API key's source name, or the role given
    to `wardflow layout publish`), never a person's name."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["WardLayoutSet"] = "WardLayoutSet"
    ward: WardDefinition
    changed_by: Identifier
    reason: LayoutChangeReason | None = None

    def kafka_key(self) -> bytes:
        """The ward's id (the `ward` field is the whole definition)."""
        return self.ward.id.encode()
