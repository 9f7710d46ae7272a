"""Beds context: housekeeping reports in, bed changes, ward availability and decisions out."""

from __future__ import annotations

from typing import ClassVar, Literal
from uuid import UUID

from pydantic import Field

from schemas.base import Event, Identifier
from schemas.vocabulary import BedStatus, LevelOfCare


class BedStatusReported(Event):
    """Housekeeping or a bed manager reports a bed's status (events.raw, events.clean)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedStatusReported"] = "BedStatusReported"
    ward: Identifier
    bed: Identifier
    status: Literal[BedStatus.DIRTY, BedStatus.CLEANING, BedStatus.AVAILABLE, BedStatus.BLOCKED]
    reason: str | None = Field(default=None, max_length=200)


class BedStatusChanged(Event):
    """A bed changed status in the live state (beds.events)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedStatusChanged"] = "BedStatusChanged"
    ward: Identifier
    bed: Identifier
    previous_status: BedStatus
    status: BedStatus
    cause_event_id: UUID


class WardAvailabilityUpdated(Event):
    """The current count of beds by status in one ward (beds.availability, compacted)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["WardAvailabilityUpdated"] = "WardAvailabilityUpdated"
    ward: Identifier
    level_of_care: LevelOfCare
    beds_by_status: dict[BedStatus, int]
    total_beds: int


class BedAssigned(Event):
    """The scheduler gave a bed to a patient (scheduling.decisions)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedAssigned"] = "BedAssigned"
    patient_id: Identifier
    ward: Identifier
    bed: Identifier
    cause_event_id: UUID
    wait_seconds: float = Field(ge=0)


class BedRequestWaiting(Event):
    """A patient needs a bed the scheduler could not give yet, and why (scheduling.decisions)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedRequestWaiting"] = "BedRequestWaiting"
    patient_id: Identifier
    ward: Identifier
    reason: Literal["no_bed_available", "unknown_ward"]
    cause_event_id: UUID


class BedTransitionRefused(Event):
    """An event asked for a bed change the lifecycle forbids; nothing was applied (decisions)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedTransitionRefused"] = "BedTransitionRefused"
    ward: Identifier
    bed: Identifier | None
    current_status: BedStatus | None
    requested_status: BedStatus
    reason: str
    cause_event_id: UUID
