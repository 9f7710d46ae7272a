"""Scheduler rules: the bed lifecycle, and what each event asks of the beds.

Pure: decisions are plain values; the Redis adapter (`store.py`) applies them atomically. The
hospital layout is `services.common.hospital`.
"""

from __future__ import annotations

from schemas.vocabulary import BedStatus, LevelOfCare
from services.common.hospital import HospitalLayout

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


def count_by_status(statuses: list[BedStatus]) -> dict[BedStatus, int]:
    """Beds by status, every status present (zero when none)."""
    return {status: statuses.count(status) for status in BedStatus}


CRITICAL_CARE_LEVELS: tuple[LevelOfCare, ...] = (LevelOfCare.HDU, LevelOfCare.ICU)


def wards_at_level(layout: HospitalLayout, level: LevelOfCare) -> tuple[str, ...]:
    """The ids of the wards giving `level` of care, sorted: the order in which the reservation
    script breaks ties between wards with as many free beds."""
    return tuple(sorted(ward.id for ward in layout.wards if ward.level_of_care == level))


def critical_care_level(layout: HospitalLayout, ward_id: str) -> LevelOfCare | None:
    """The ward's level of care if it is HDU or ICU (where beds can be reserved), else None."""
    ward = layout.ward(ward_id)
    if ward is None or ward.level_of_care not in CRITICAL_CARE_LEVELS:
        return None
    return ward.level_of_care
