"""Scheduler rules: the hospital layout, the bed lifecycle, and what each event asks of the beds.

Pure: the layout arrives as already-parsed data, decisions are plain values. The Redis adapter
(`store.py`) applies them atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.vocabulary import BedStatus, LevelOfCare

S = BedStatus

# Bed lifecycle (HL7 table 0116 vocabulary). Discharge makes a bed dirty, never available;
# housekeeping moves it through cleaning to available; blocked from any non-occupied state, and
# an unblocked bed is cleaned before use.
ALLOWED_TRANSITIONS: dict[BedStatus, frozenset[BedStatus]] = {
    S.AVAILABLE: frozenset({S.RESERVED, S.OCCUPIED, S.BLOCKED}),
    S.RESERVED: frozenset({S.OCCUPIED, S.AVAILABLE, S.BLOCKED}),
    S.OCCUPIED: frozenset({S.DIRTY}),
    S.DIRTY: frozenset({S.CLEANING, S.BLOCKED}),
    S.CLEANING: frozenset({S.AVAILABLE, S.DIRTY, S.BLOCKED}),
    S.BLOCKED: frozenset({S.DIRTY, S.CLEANING}),  # back into use only through cleaning
}


def can_transition(current: BedStatus, target: BedStatus) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def allowed_from(target: BedStatus) -> frozenset[BedStatus]:
    """Every status a bed may be in for a move to `target` to be legal."""
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


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


def count_by_status(statuses: list[BedStatus]) -> dict[BedStatus, int]:
    """Beds by status, every status present (zero when none)."""
    return {status: statuses.count(status) for status in BedStatus}
