"""Scheduler rules: the bed lifecycle, and what each event asks of the beds.

Pure: decisions are plain values; the Redis adapter (`store.py`) applies them atomically. The
hospital layout is `services.common.hospital`.
"""

from __future__ import annotations

from schemas.vocabulary import BedStatus

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
