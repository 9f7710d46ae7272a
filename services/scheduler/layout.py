"""Layout changes while the scheduler runs (pure).

The scheduler's layout is its layout file with every `WardLayoutSet` on hospital.layout folded
over it: each replaces one ward whole, or adds it. A change may not take away a bed that is in use
(occupied, reserved, dirty or cleaning), nor change the level of care of a ward with a bed
occupied or reserved: the API refuses such a change before publishing it (`refusal`). Beds that
leave a ward are removed only while available or blocked; one in use when the change is applied
(its state changed after the API's check) stays until it is free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from schemas.layout import WardLayoutSet
from schemas.vocabulary import BedStatus
from services.common.hospital import HospitalLayout, Ward

IN_USE: frozenset[BedStatus] = frozenset(
    {BedStatus.OCCUPIED, BedStatus.RESERVED, BedStatus.DIRTY, BedStatus.CLEANING}
)
"""A bed in these states has a patient, is held for one, or is between two: it cannot leave."""
HELD: frozenset[BedStatus] = frozenset({BedStatus.OCCUPIED, BedStatus.RESERVED})
"""A ward with a bed in these states keeps its level of care."""


def folded(base: HospitalLayout, changes: Iterable[WardLayoutSet]) -> HospitalLayout:
    """`base` with each change applied in turn (a later change of a ward wins)."""
    layout = base
    for change in changes:
        layout = layout.with_ward(change.ward.as_ward())
    return layout


def leaving(new: Ward, present: Iterable[str], old: Ward | None = None) -> tuple[str, ...]:
    """The beds `present` in the live state that the ward's new definition lacks, in the old
    definition's order (beds it did not list last, by name)."""
    kept = set(new.beds)
    order = {bed: index for index, bed in enumerate(old.beds if old else ())}
    gone = [bed for bed in present if bed not in kept]
    return tuple(sorted(gone, key=lambda bed: (order.get(bed, len(order)), bed)))


@dataclass(frozen=True)
class LayoutRefusal:
    """Why a layout change may not be made now, and the beds in the way."""

    reason: Literal["beds_in_use", "level_of_care_in_use"]
    beds: tuple[str, ...]
    detail: str


def refusal(old: Ward | None, new: Ward, statuses: Mapping[str, BedStatus]) -> LayoutRefusal | None:
    """None when `new` may replace `old` (None: a ward not in the layout yet) given the live
    `statuses` of the ward's beds; else what is in the way."""
    busy = tuple(bed for bed in leaving(new, statuses, old) if statuses[bed] in IN_USE)
    if busy:
        return LayoutRefusal(
            "beds_in_use",
            busy,
            "these beds would leave the ward but are occupied, reserved, dirty or cleaning:"
            " free them (or block them) first",
        )
    if old is not None and old.level_of_care != new.level_of_care:
        order = {bed: index for index, bed in enumerate(old.beds)}
        held = sorted(
            (bed for bed, status in statuses.items() if status in HELD),
            key=lambda bed: (order.get(bed, len(order)), bed),
        )
        if held:
            return LayoutRefusal(
                "level_of_care_in_use",
                tuple(held),
                f"the ward's level of care cannot change from {old.level_of_care.value} while"
                " these beds are occupied or reserved",
            )
    return None
