"""Beds context: housekeeping reports in, bed changes, ward availability and decisions out."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field

from schemas.base import Contract, Event, Identifier
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


class CostEstimate(Contract):
    """What a bed costs per day of stay under the scheduler's reviewed tariff, and on what basis.

    An estimate for transparency, not a bill: the length of stay is not known when the bed is
    given. `per_day` is exact (a decimal string in JSON), in `currency` (ISO 4217)."""

    tariff_version: str = Field(min_length=1, max_length=64)
    level_of_care: LevelOfCare
    per_day: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    basis: str = Field(min_length=1, max_length=300)


class BedAssigned(Event):
    """The scheduler gave a bed to a patient (scheduling.decisions); `cost_estimate` is the
    bed's cost per day under the scheduler's tariff (absent on decisions made before it)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedAssigned"] = "BedAssigned"
    patient_id: Identifier
    ward: Identifier
    bed: Identifier
    cause_event_id: UUID
    wait_seconds: float = Field(ge=0)
    cost_estimate: CostEstimate | None = None


CriticalCareLevelOfCare = Literal[LevelOfCare.HDU, LevelOfCare.ICU]


class BedRequestWaiting(Event):
    """A patient needs a bed the scheduler could not give yet, and why (scheduling.decisions).

    For a critical-care request (`level_of_care` and `request_id` set), `ward` is the patient's
    current ward and the request waits for any ward of that level; `no_ward_at_level_of_care`
    means the hospital layout has no such ward (the request is not queued).
    """

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedRequestWaiting"] = "BedRequestWaiting"
    patient_id: Identifier
    ward: Identifier
    reason: Literal["no_bed_available", "unknown_ward", "no_ward_at_level_of_care"]
    cause_event_id: UUID
    level_of_care: CriticalCareLevelOfCare | None = None
    request_id: UUID | None = None


class BedReserved(Event):
    """An HDU/ICU bed is held for a critical-care request until the patient arrives
    (scheduling.decisions). `wait_seconds` runs from the request to the reservation;
    `cost_estimate` is the bed's cost per day under the scheduler's tariff."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedReserved"] = "BedReserved"
    patient_id: Identifier
    ward: Identifier
    bed: Identifier
    request_id: UUID
    level_of_care: CriticalCareLevelOfCare
    wait_seconds: float = Field(ge=0)
    cause_event_id: UUID
    cost_estimate: CostEstimate | None = None


class BedReservationReleased(Event):
    """A critical-care request lost its reserved bed or its place in the queue, and why
    (scheduling.decisions).

    - `request_withdrawn`: diagnosis withdrew the request (`withdrawal_reason` says why); `bed` is
      None when the request was only queued, and `ward` is then the patient's current ward.
    - `placed_in_named_bed`: the patient was placed in another bed of the ward, named by the EHR;
      the reserved bed was freed.
    - `bed_taken`: another change took the reserved bed (blocked, or another patient placed in
      it); the request is queued again at its original time (a BedReserved or BedRequestWaiting
      follows).
    """

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedReservationReleased"] = "BedReservationReleased"
    patient_id: Identifier
    ward: Identifier
    bed: Identifier | None
    request_id: UUID
    level_of_care: CriticalCareLevelOfCare
    reason: Literal["request_withdrawn", "placed_in_named_bed", "bed_taken", "reservation_expired"]
    withdrawal_reason: str | None = Field(default=None, max_length=64)
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


SnapshotScope = Annotated[str, Field(pattern=r"^(ward|level):[A-Za-z0-9._\-]{1,58}$")]


class BedStateSnapshot(Event):
    """The scheduler's whole live state for one scope, as Redis held it at `taken_at_us`
    (beds.state, compacted; the latest record per scope wins).

    A `ward:<W>` scope holds the ward's beds, statuses, occupants, reservations and waiting
    patients; a `level:<L>` scope holds that level of care's critical-care queue. The structures
    are the Redis hashes and sorted sets by name, values exactly as stored (sorted-set scores as
    Redis prints them), so `wardflow state rebuild` restores Redis exactly. Patient ids are the
    ingest pseudonyms, as everywhere past ingest."""

    key_field: ClassVar[str] = "scope"
    kind: Literal["BedStateSnapshot"] = "BedStateSnapshot"
    scope: SnapshotScope
    taken_at_us: int = Field(ge=0, description="Redis server time, microseconds since the epoch.")
    hashes: dict[str, dict[str, str]]
    sorted_sets: dict[str, list[tuple[str, str]]]
