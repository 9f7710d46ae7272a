"""The decisions that give a patient a bed: BedAssigned (the patient is in it) or BedReserved
(held until they arrive), with their waits measured for fairness and their cost estimate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.beds import BedAssigned, BedReserved
from schemas.topics import SCHEDULING_DECISIONS
from schemas.vocabulary import LevelOfCare
from services.common import metrics
from services.common.handlers import Output
from services.scheduler.decisions import Cause, derived_id
from services.scheduler.domain import ORIGINS, cost_estimate, wait_band
from services.scheduler.metrics import (
    ALLOCATIONS,
    BED_WAIT_SECONDS,
    STAGE,
    TIME_TO_BED_SECONDS,
)
from services.scheduler.policy import Tariff
from services.scheduler.store import Assignment, CareRequest


def bed_reserved(
    cause: Cause,
    held: CareRequest,
    level: LevelOfCare,
    now: datetime,
    common: dict[str, Any],
    tag: str,
    tariff: Tariff,
    measure: bool = False,
) -> Output:
    """A BedReserved; `measure`: a new reservation, its wait counted for fairness."""
    assert held.ward is not None and held.bed is not None
    wait = max(0.0, now.timestamp() - held.requested_at_epoch)
    if measure:
        BED_WAIT_SECONDS.labels(wait_band(held.band), "critical_care").observe(wait)
    return Output(
        SCHEDULING_DECISIONS,
        BedReserved(
            event_id=derived_id(cause.event_id, f"{tag}:reserved:{held.request_id}"),
            patient_id=held.patient_id,
            ward=held.ward,
            bed=held.bed,
            request_id=held.request_id,
            level_of_care=level,
            wait_seconds=wait,
            cause_event_id=cause.event_id,
            cost_estimate=cost_estimate(tariff, level, held.needs),
            **common,
        ),
    )


def bed_assigned(
    cause: Cause,
    ward_id: str,
    level: LevelOfCare | None,
    placement: Assignment,
    now: datetime,
    common: dict[str, Any],
    what: str,
    tariff: Tariff,
) -> Output:
    """A BedAssigned for a patient given a bed, or a BedReserved for a bed held for a bed
    manager's request (its wait measured for fairness now, not when the patient arrives)."""
    wait = max(0.0, now.timestamp() - placement.requested_at_epoch)
    if placement.reservation is not None and level is not None:
        held = placement.reservation
        if placement.origin in ORIGINS:
            BED_WAIT_SECONDS.labels(wait_band(placement.band), placement.origin).observe(wait)
        return bed_reserved(cause, held, level, now, common, f"{ward_id}:{what}", tariff)
    ALLOCATIONS.labels(ward_id).inc()
    TIME_TO_BED_SECONDS.labels(level.value if level else "unknown").observe(wait)
    if placement.origin in ORIGINS:  # None: a reserved bed's holder, measured at reservation
        BED_WAIT_SECONDS.labels(wait_band(placement.band), placement.origin).observe(wait)
    metrics.END_TO_END_LATENCY_SECONDS.labels(STAGE).observe(
        max(0.0, (now - cause.recorded_at).total_seconds())
    )
    return Output(
        SCHEDULING_DECISIONS,
        BedAssigned(
            event_id=derived_id(cause.event_id, f"{ward_id}:{what}"),
            patient_id=placement.patient_id,
            ward=ward_id,
            bed=placement.bed,
            cause_event_id=cause.event_id,
            wait_seconds=wait,
            cost_estimate=(cost_estimate(tariff, level, placement.needs) if level else None),
            **common,
        ),
    )
