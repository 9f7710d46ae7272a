"""The care plan: clinicians' instructions about one patient, folded by event time (pure).

A `CareRecord` is part of the patient's table record. Each instruction keeps the latest event by
`(occurred_at, event_id)`, like the SpO2 scale and the readings, so any arrival order of the same
events converges to the same record and a redelivered event changes nothing:

- the ceiling of care (`CeilingOfCareSet`; "icu", no ceiling, until one is set);
- suspected infection (`SuspectedInfectionSet`; not suspected until set);
- per overridable parameter, the latest `ParameterOverrideSet` or `ParameterOverrideCleared`. A
  clear is kept as a tombstone (an entry without an override), so an older set that arrives after
  it cannot bring the override back, and a newer set replaces the clear;
- the latest `AlertAcknowledged`.

Expired overrides stay in the plan (diagnosis compares `expires_at` with its own clock), but one
that expired more than `EXPIRED_RETENTION` (a day) before the latest care event's time (the
`horizon`, event time, never the wall clock) is dropped: it becomes a tombstone, and a tombstone
is deleted once no override older than it could still be unexpired by that rule (an override lasts
at most `MAX_OVERRIDE`). The horizon only grows, so this too converges whatever the order.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Any
from uuid import UUID

from schemas.base import Contract, UtcDatetime, value_class
from schemas.care import (
    MAX_OVERRIDE,
    Acknowledgement,
    AlertAcknowledged,
    CarePlan,
    CeilingOfCare,
    CeilingOfCareSet,
    ParameterOverride,
    ParameterOverrideCleared,
    ParameterOverrideSet,
    SuspectedInfectionSet,
)
from services.fusion.readings import Observed

CareEvent = (
    CeilingOfCareSet
    | SuspectedInfectionSet
    | ParameterOverrideSet
    | ParameterOverrideCleared
    | AlertAcknowledged
)
CARE_EVENT_TYPES: tuple[type[CareEvent], ...] = (
    CeilingOfCareSet,
    SuspectedInfectionSet,
    ParameterOverrideSet,
    ParameterOverrideCleared,
    AlertAcknowledged,
)
EXPIRED_RETENTION = timedelta(days=1)
"""How long after its expiry (in event time) an override is still shown in the plan."""


@value_class(kw_only=True)
class CeilingTrack(Observed):
    ceiling: CeilingOfCare
    set_by_role: str


@value_class(kw_only=True)
class InfectionTrack(Observed):
    suspected: bool
    set_by_role: str


@value_class(kw_only=True)
class OverrideTrack(Observed):
    """The latest instruction for one parameter: an override, or None once cleared."""

    override: ParameterOverride | None = None


@value_class(kw_only=True)
class AcknowledgementTrack(Observed):
    assessment_id: UUID | None = None
    acknowledged_by_role: str


class CareRecord(Contract):
    """What fusion keeps of a patient's care instructions (part of the table value)."""

    ceiling: CeilingTrack | None = None
    infection: InfectionTrack | None = None
    overrides: dict[str, OverrideTrack] = {}
    acknowledgement: AcknowledgementTrack | None = None
    horizon: UtcDatetime | None = None
    """The latest `occurred_at` of any care event folded: the clock of the expiry clean-up."""


def _instruction(care: CareRecord, event: CareEvent) -> dict[str, object]:
    """The field of the record the event replaces, if it is newer than what is there."""
    stamp: dict[str, Any] = {
        "at": event.occurred_at,
        "source": event.source,
        "event_id": str(event.event_id),
    }

    def newer(field: str, track: Observed) -> dict[str, object]:
        return {field: track} if track.is_newer_than(getattr(care, field)) else {}

    if isinstance(event, CeilingOfCareSet):
        return newer(
            "ceiling",
            CeilingTrack(**stamp, ceiling=event.ceiling, set_by_role=event.set_by_role),
        )
    if isinstance(event, SuspectedInfectionSet):
        return newer(
            "infection",
            InfectionTrack(**stamp, suspected=event.suspected, set_by_role=event.set_by_role),
        )
    if isinstance(event, AlertAcknowledged):
        return newer(
            "acknowledgement",
            AcknowledgementTrack(
                **stamp,
                assessment_id=event.assessment_id,
                acknowledged_by_role=event.acknowledged_by_role,
            ),
        )
    override: ParameterOverride | None = None
    if isinstance(event, ParameterOverrideSet):
        override = ParameterOverride(
            parameter=event.parameter,
            low=event.low,
            high=event.high,
            expires_at=event.expires_at,
            set_by_role=event.set_by_role,
            set_at=event.occurred_at,
        )
    track = OverrideTrack(**stamp, override=override)
    if not track.is_newer_than(care.overrides.get(event.parameter)):
        return {}
    return {"overrides": {**care.overrides, event.parameter: track}}


def _pruned(overrides: dict[str, OverrideTrack], horizon: datetime) -> dict[str, OverrideTrack]:
    """Overrides expired more than a day before the horizon become tombstones; tombstones go
    once every override older than them would have been dropped too."""
    cutoff = horizon - EXPIRED_RETENTION
    kept: dict[str, OverrideTrack] = {}
    for parameter, track in overrides.items():
        if track.override is not None and track.override.expires_at < cutoff:
            track = replace(track, override=None)
        if track.override is None and track.at + MAX_OVERRIDE < cutoff:
            continue
        kept[parameter] = track
    return kept if kept != overrides else overrides


def fold(care: CareRecord, event: CareEvent) -> CareRecord:
    """The care record with the event folded in; the same object when it changes nothing."""
    update = _instruction(care, event)
    horizon = event.occurred_at if care.horizon is None else max(care.horizon, event.occurred_at)
    overrides = update.get("overrides", care.overrides)
    assert isinstance(overrides, dict)
    pruned = _pruned(overrides, horizon)
    if pruned is not overrides:
        update["overrides"] = pruned
    if horizon != care.horizon:
        update["horizon"] = horizon
    if not update:
        return care
    folded = care.model_copy(update=update)
    return care if folded == care else folded  # e.g. an event dropped as soon as it is folded


def plan(care: CareRecord) -> CarePlan:
    """The care plan a snapshot carries (overrides in parameter order)."""
    acknowledgement = care.acknowledgement
    return CarePlan(
        ceiling=care.ceiling.ceiling if care.ceiling else "icu",
        ceiling_set_by_role=care.ceiling.set_by_role if care.ceiling else None,
        suspected_infection=care.infection.suspected if care.infection else False,
        overrides=[
            track.override
            for _, track in sorted(care.overrides.items())
            if track.override is not None
        ],
        acknowledgement=None
        if acknowledgement is None
        else Acknowledgement(
            assessment_id=acknowledgement.assessment_id,
            acknowledged_at=acknowledgement.at,
            acknowledged_by_role=acknowledgement.acknowledged_by_role,
        ),
    )


def digest(care: CareRecord) -> str:
    """A short, stable digest of the care plan; empty when it is the default plan (no instruction
    in force), so a patient without any keeps the throttle signature it had before care plans."""
    if not care.overrides and care.ceiling is care.infection is care.acknowledgement is None:
        return ""  # the common case, without building the plan (called for every event)
    care_plan = plan(care)
    if care_plan == CarePlan():
        return ""
    return sha256(care_plan.model_dump_json().encode()).hexdigest()[:16]
