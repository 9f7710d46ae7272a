"""Scheduler rules: the bed lifecycle, and what each event asks of the beds.

Pure: decisions are plain values; the Redis adapter (`store.py`) applies them atomically. The
hospital layout is `services.common.hospital`; the priority credits and the tariff come from the
reviewed policy file (`policy.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from schemas.beds import CostEstimate
from schemas.vocabulary import Band, BedStatus, Capability, LevelOfCare, Sex
from services.common.hospital import BaySex, HospitalLayout, Ward
from services.scheduler.policy import Priority, Tariff

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


# --- Bed matching: capabilities and bay sex policy ------------------------------------------


def bay_accepts(policy: BaySex, sex: Sex | None) -> bool:
    """A mixed bay accepts everyone; a female or male bay that sex only (a patient of sex other,
    unknown or not given goes to mixed bays only)."""
    return policy == "mixed" or policy == sex


def eligible_beds(ward: Ward, needs: Sequence[Capability], sex: Sex | None) -> tuple[str, ...]:
    """The ward's beds the patient may be given, in ward order: beds with every capability in
    `needs`, in a bay whose sex policy accepts `sex` (a ward without bays: any bed)."""
    wanted = set(needs)
    return tuple(
        bed
        for bed in ward.beds
        if wanted <= set(ward.capabilities_of(bed))
        and (not ward.bays or bay_accepts(_bay_sex(ward, bed), sex))
    )


def _bay_sex(ward: Ward, bed: str) -> BaySex:
    bay = ward.bay_of(bed)
    assert bay is not None, "a ward with bays has every bed in a bay"
    return bay.sex


def allocation_restriction(
    ward: Ward, needs: Sequence[Capability], sex: Sex | None
) -> tuple[str, ...] | None:
    """The beds an allocation is restricted to, or None when any bed will do (no needs, and a
    ward without bays): what the scheduler passes to `ALLOCATE`."""
    if not needs and not ward.bays:
        return None
    return eligible_beds(ward, needs, sex)


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


# --- What the scheduler keeps of a patient while they wait for or hold a bed -----------------


def patient_profile(
    *,
    sex: Sex | None,
    needs: Sequence[Capability],
    band: Band | str | None,
    aggregate: int | None,
    since: float,
) -> str:
    """The profile (JSON) kept with a ward's waiting patients and occupants: sex and needs for
    matching a critical-care bed later, NEWS2 band and aggregate for priority, `since` the start
    of their wait. Absent values are left out (never stored as a default)."""
    data: dict[str, Any] = {"since": since}
    if sex is not None:
        data["sex"] = sex
    if needs:
        data["needs"] = sorted(needs)
    if band:
        data["band"] = str(getattr(band, "value", band))
    if aggregate is not None:
        data["aggregate"] = aggregate
    return json.dumps(data, sort_keys=True)


def with_assessment(
    profile: Mapping[str, Any], band: Band | str, aggregate: int | None
) -> dict[str, Any]:
    """The profile after a newer assessment: its band and aggregate replace the old ones."""
    updated = {**profile, "band": str(getattr(band, "value", band))}
    updated.pop("aggregate", None)
    if aggregate is not None:
        updated["aggregate"] = aggregate
    return updated


def critical_care_match(
    layout: HospitalLayout,
    level: LevelOfCare,
    from_ward: str | None,
    sex: Sex | None,
    needs: Sequence[Capability],
) -> dict[str, Any] | None:
    """Which beds of the level a patient fits, for the reservation script (`match`), or None when
    every bed of every ward of the level fits and no ward is preferred (any bed will do).

    - beds: per ward, the beds with every capability in `needs`, in a bay whose sex policy
      accepts `sex` (`eligible_beds`); wards with none are left out.
    - specialty: a ward of the level with a specialty takes patients coming from a ward of that
      specialty; if no ward of the level has the patient's specialty or none, every ward does
      (the patient is not left without a unit).
    - prefer: the wards on the site of the ward the patient comes from, served first.
    """
    wards = [w for w in layout.wards if w.level_of_care == level]
    origin = layout.ward(from_ward) if from_ward else None
    specialty = origin.specialty if origin else None
    fitting = [w for w in wards if w.specialty is None or w.specialty == specialty]
    if not fitting:
        fitting = wards
    wanted = tuple(needs)
    beds = {w.id: list(eligible_beds(w, wanted, sex)) for w in fitting}
    beds = {ward: names for ward, names in beds.items() if names}
    site = origin.site if origin else None
    prefer = {w.id: True for w in fitting if site is not None and w.site == site}
    sites = {w.site for w in wards}
    unrestricted = len(fitting) == len(wards) and all(
        len(beds.get(w.id, ())) == len(w.beds) for w in wards
    )
    if unrestricted and (site is None or len(sites) <= 1) and not wanted:
        return None
    match: dict[str, Any] = {"beds": beds, "prefer": prefer if len(sites) > 1 else {}}
    if wanted:
        match["needs"] = sorted(wanted)
    return match


# --- Queue priority: acuity first, then waiting time, with aging ------------------------------

NEWS2_MAX_AGGREGATE = 20


def acuity_credit_seconds(
    band: Band | str | None, aggregate: int | None, priority: Priority
) -> float:
    """How far ahead of its request time a bed request is queued (a critical-care request, or a
    patient waiting for a ward bed): the band's credit plus the credit per NEWS2 aggregate point
    (the aggregate taken within 0..20). Without a band (no assessment known) there is no credit
    at all: first come, first served."""
    if band is None or band == "":
        return 0.0
    points = min(max(aggregate or 0, 0), NEWS2_MAX_AGGREGATE)
    minutes = priority.band_credit_minutes.minutes(Band(band))
    return 60.0 * (minutes + points * priority.aggregate_credit_minutes)


def queue_score(
    requested_at_epoch: float, band: Band | str | None, aggregate: int | None, priority: Priority
) -> float:
    """The request's place in its level's queue (lowest served first): request time minus the
    acuity credit. A sicker request goes ahead of one made earlier unless that one has already
    waited longer than the difference of their credits (aging: nobody waits forever)."""
    return requested_at_epoch - acuity_credit_seconds(band, aggregate, priority)


# --- Fairness measured: the labels of the bed wait histogram -----------------------------------

WAIT_BANDS: tuple[str, ...] = (*(band.value for band in Band), "unknown")
ORIGINS: tuple[str, ...] = ("emergency", "ward", "critical_care", "transfer", "manual")
"""`manual`: a bed manager's request for a ward bed (BedRequested through the API)."""

BLOCKED_REASONS: tuple[str, ...] = ("infection", "maintenance", "staffing", "other", "unspecified")
"""The reason codes recorded for blocked beds (`unspecified`: the block gave none)."""


def wait_band(band: str | None) -> str:
    """The band label of a bed wait: the request's NEWS2 band, else `unknown` (admissions and
    transfers carry no band)."""
    return band if band in WAIT_BANDS else "unknown"


def placement_origin(layout: HospitalLayout, from_ward: str | None) -> str:
    """Where a patient placed by the scheduler comes from: `ward` for an admission (no
    `from_ward`), `emergency` for a transfer out of an emergency department ward, else
    `transfer`. (Critical-care requests are `critical_care`.)"""
    if from_ward is None:
        return "ward"
    ward = layout.ward(from_ward)
    if ward is not None and ward.level_of_care == LevelOfCare.EMERGENCY:
        return "emergency"
    return "transfer"


# --- Transparent pricing ----------------------------------------------------------------------


def cost_estimate(
    tariff: Tariff, level: LevelOfCare, equipment: Sequence[str] = ()
) -> CostEstimate:
    """A bed's cost per day of stay under the tariff: the bed-day of its level of care, plus the
    tariff's per-day add-on for each of `equipment` (the patient's needs met by the bed) that the
    tariff prices; the basis names each one, and any the tariff does not price."""
    bed_day = tariff.per_day.amount(level)
    priced = [name for name in equipment if name in tariff.equipment]
    add_ons = [(name, tariff.equipment[name]) for name in priced]
    unpriced = sorted(name for name in equipment if name not in tariff.equipment)
    per_day = bed_day + sum((item.per_day for _, item in add_ons), Decimal(0))
    basis = f"one {level.value} bed-day at {bed_day:.2f} {tariff.currency}"
    for name, item in add_ons:
        basis += f", plus {name} at {item.per_day:.2f} {tariff.currency} per day"
    if unpriced:
        basis += f", {', '.join(unpriced)} not priced"
    basis += f" (tariff {tariff.version}); per day of stay, the length of stay is not known"
    return CostEstimate(
        tariff_version=tariff.version,
        level_of_care=level,
        per_day=per_day.quantize(Decimal("0.01")),
        currency=tariff.currency,
        basis=basis[:300],
    )
