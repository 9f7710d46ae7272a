"""The scheduler's derived events that need nothing but their cause: ids, bed changes,
released reservations and refused transitions. Every id is a uuid5 of the cause, so a
redelivered event yields identical outputs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from schemas.base import Event
from schemas.beds import (
    BedRequestWaiting,
    BedReservationReleased,
    BedStatusChanged,
    BedTransitionRefused,
)
from schemas.topics import BEDS_EVENTS, SCHEDULING_DECISIONS
from schemas.vocabulary import BedStatus, LevelOfCare
from services.common.handlers import Output
from services.scheduler.store import BedChange, CareRequest, ChangeResult, WardBedChange

SOURCE = "wardflow-scheduler"


def derived_id(cause: UUID, what: str) -> UUID:
    """Deterministic ids for derived events: a redelivered cause produces identical outputs."""
    return uuid5(NAMESPACE_URL, f"wardflow:scheduler:{cause}:{what}")


def bed_changed(
    cause: Cause,
    ward: str,
    change: BedChange | WardBedChange,
    what: str,
    common: dict[str, Any],
    blocked_reason: Any = None,
) -> Output:
    """One bed's change of status on beds.events, with an id derived from its cause."""
    return Output(
        BEDS_EVENTS,
        BedStatusChanged(
            event_id=derived_id(cause.event_id, what),
            ward=ward,
            bed=change.bed,
            previous_status=change.previous,
            status=change.status,
            cause_event_id=cause.event_id,
            blocked_reason=blocked_reason,
            **common,
        ),
    )


@dataclass(frozen=True)
class Sweep:
    """What caused the outputs of a periodic sweep (no event did): an id and a time."""

    event_id: UUID
    recorded_at: datetime


Cause = Event | Sweep


def waiting(
    cause: Cause,
    patient_id: str,
    ward: str,
    reason: Any,
    what: str,
    *,
    level: LevelOfCare | None = None,
    request_id: UUID | None = None,
) -> Output:
    """A BedRequestWaiting: the patient needs a bed the scheduler could not give yet, and why
    (`reason`, validated by the model). A critical-care request's names its `level` and
    `request_id`, and `ward` is the patient's current ward."""
    now = datetime.now(UTC)
    return Output(
        SCHEDULING_DECISIONS,
        BedRequestWaiting(
            event_id=derived_id(cause.event_id, what),
            patient_id=patient_id,
            ward=ward,
            reason=reason,
            cause_event_id=cause.event_id,
            level_of_care=level,
            request_id=request_id,
            occurred_at=now,
            recorded_at=now,
            source=SOURCE,
        ),
    )


def released(
    cause: Cause,
    request: CareRequest,
    reason: Any,
    what: str,
    ward_level: LevelOfCare | None = None,
    withdrawal_reason: str | None = None,
) -> Output:
    """A request lost its reserved bed or its place in the queue, and why. `ward_level`: the
    level of care of the ward of a ward reservation (a critical-care record names its own)."""
    now = datetime.now(UTC)
    held = request.state == "reserved"
    return Output(
        SCHEDULING_DECISIONS,
        BedReservationReleased(
            event_id=derived_id(cause.event_id, what),
            patient_id=request.patient_id,
            ward=(request.ward if held else None) or request.from_ward,
            bed=request.bed if held else None,
            request_id=request.request_id,
            level_of_care=LevelOfCare(request.level) if request.level else ward_level,
            reason=reason,
            withdrawal_reason=withdrawal_reason,
            cause_event_id=cause.event_id,
            occurred_at=now,
            recorded_at=now,
            source=SOURCE,
        ),
    )


def refused(
    cause: Event, result: ChangeResult, requested: BedStatus, common: dict[str, Any]
) -> Output:
    """An illegal bed change, refused: nothing was applied."""
    if result.outcome == "unknown_bed":
        reason = f"bed {result.bed!r} is not in ward {result.ward!r}"
    else:
        reason = f"a {result.previous} bed cannot become {requested.value}"
    return Output(
        SCHEDULING_DECISIONS,
        BedTransitionRefused(
            event_id=derived_id(cause.event_id, f"{result.ward}:refused"),
            ward=result.ward,
            bed=result.bed,
            current_status=result.previous,
            requested_status=requested,
            reason=reason,
            cause_event_id=cause.event_id,
            **common,
        ),
    )


def reservations_let_go(
    cause: Cause, result: ChangeResult, step: str, ward_level: LevelOfCare | None
) -> list[Output]:
    """BedReservationReleased for every reservation a ward script let go, and a
    BedRequestWaiting for a ward reservation's patient queued again without a bed. `ward_level`:
    the level of care of the result's ward."""
    tag = f"{result.ward}:{step}"
    outputs = []
    if result.released is not None:
        outputs.append(
            released(cause, result.released, "placed_in_named_bed", f"{tag}:released", ward_level)
        )
    if result.displaced is not None:
        outputs.append(
            released(cause, result.displaced, "bed_taken", f"{tag}:displaced", ward_level)
        )
    if result.cancelled is not None:
        outputs.append(
            released(
                cause,
                result.cancelled,
                "request_withdrawn",
                f"{tag}:cancelled",
                ward_level,
                withdrawal_reason="cancelled",
            )
        )
    for lapsed in result.expired:
        what = f"{tag}:expired:{lapsed.request_id}"
        outputs.append(released(cause, lapsed, "reservation_expired", what, ward_level))
    displaced = result.displaced
    if displaced is not None and result.requeued is not None:
        what = f"{tag}:requeued"
        outputs.append(
            waiting(
                cause, displaced.patient_id, result.ward, result.requeued, what,
                request_id=displaced.request_id,
            )
        )  # fmt: skip
    return outputs
