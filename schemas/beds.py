"""Beds context: housekeeping reports in, bed changes, ward availability and decisions out."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field, model_validator

from schemas.base import Contract, Event, Identifier
from schemas.vocabulary import Band, BedStatus, Capability, LevelOfCare, Sex

BlockedReason = Literal["infection", "maintenance", "staffing", "other"]
"""Why a bed is blocked, as a code (small and fixed: it labels a metric)."""
RecordedBlockedReason = Literal["infection", "maintenance", "staffing", "other", "unspecified"]
"""The code the scheduler records for a blocked bed: `unspecified` when the report gave none."""


class BedStatusReported(Event):
    """Housekeeping or a bed manager reports a bed's status (events.raw, events.clean; a bed
    manager's block or unblock through the scheduler's API: scheduling.requests).

    `blocked_reason` is the code of a block (ignored for other statuses; a block without one is
    recorded as `unspecified`); `reason` stays free text."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedStatusReported"] = "BedStatusReported"
    ward: Identifier
    bed: Identifier
    status: Literal[BedStatus.DIRTY, BedStatus.CLEANING, BedStatus.AVAILABLE, BedStatus.BLOCKED]
    reason: str | None = Field(default=None, max_length=200)
    blocked_reason: BlockedReason | None = None


class BedStatusChanged(Event):
    """A bed changed status in the live state (beds.events)."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedStatusChanged"] = "BedStatusChanged"
    ward: Identifier
    bed: Identifier
    previous_status: BedStatus
    status: BedStatus
    cause_event_id: UUID
    blocked_reason: RecordedBlockedReason | None = Field(
        default=None, description="Set when the bed became blocked: the recorded reason code."
    )


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


class BedRequested(Event):
    """A person (a bed manager, through the scheduler's API) asks for a bed for a patient
    (scheduling.requests). `event_id` is the request's id.

    Exactly one of `ward` (a bed in that ward for a patient still to arrive: reserved at once,
    or queued for the ward by acuity and reserved when one is freed; the admission or transfer
    that moves the patient in confirms it, unconfirmed it expires after the scheduling policy's
    `ward_hold_minutes`) and `level_of_care` (an HDU/ICU bed in any ward of that level:
    reserved or queued by acuity, as a critical-care request; `from_ward` is then the patient's
    current ward). `band` is the patient's NEWS2 band, the acuity of a critical-care request.
    `needs` and `sex` restrict the bed as for PatientAdmitted (for a level, what the patient's
    current ward knows of them fills what the request omits). `requested_by` is the name of the
    API key's source, never a person."""

    kind: Literal["BedRequested"] = "BedRequested"
    patient_id: Identifier
    ward: Identifier | None = None
    level_of_care: CriticalCareLevelOfCare | None = None
    from_ward: Identifier | None = None
    band: Band | None = None
    reason: str | None = Field(default=None, max_length=200)
    origin: Literal["manual"] = "manual"
    needs: list[Capability] = Field(default=[], max_length=4)
    sex: Sex | None = None
    requested_by: Identifier

    @model_validator(mode="after")
    def _ward_or_level(self) -> BedRequested:
        if (self.ward is None) == (self.level_of_care is None):
            raise ValueError("give exactly one of ward and level_of_care")
        if self.level_of_care is not None and self.from_ward is None:
            raise ValueError("from_ward is required with level_of_care")
        return self


class BedRequestCancelled(Event):
    """A person cancels a bed request made with BedRequested (scheduling.requests). An unknown
    or already settled request changes nothing. `cancelled_by` is the API key's source name."""

    key_field: ClassVar[str] = "request_id"
    kind: Literal["BedRequestCancelled"] = "BedRequestCancelled"
    request_id: UUID
    cancelled_by: Identifier


class BedRequestWaiting(Event):
    """A patient needs a bed the scheduler could not give yet, and why (scheduling.decisions).

    For a critical-care request (`level_of_care` and `request_id` set), `ward` is the patient's
    current ward and the request waits for any ward of that level; `no_ward_at_level_of_care`
    means the hospital layout has no such ward (the request is not queued). `no_matching_bed`:
    the ward (for a critical-care request: the level) has free beds, but none with the patient's
    needs, in a bay that accepts them, of a unit that takes their specialty.
    """

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedRequestWaiting"] = "BedRequestWaiting"
    patient_id: Identifier
    ward: Identifier
    reason: Literal[
        "no_bed_available", "unknown_ward", "no_ward_at_level_of_care", "no_matching_bed"
    ]
    cause_event_id: UUID
    level_of_care: CriticalCareLevelOfCare | None = None
    request_id: UUID | None = None


class BedReserved(Event):
    """A bed is held for a request until the patient arrives (scheduling.decisions): an HDU/ICU
    bed for a critical-care request, or a bed of the requested ward for a bed manager's ward
    request (`level_of_care` is then that ward's). `wait_seconds` runs from the request to the
    reservation; `cost_estimate` is the bed's cost per day under the scheduler's tariff."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedReserved"] = "BedReserved"
    patient_id: Identifier
    ward: Identifier
    bed: Identifier
    request_id: UUID
    level_of_care: LevelOfCare
    wait_seconds: float = Field(ge=0)
    cause_event_id: UUID
    cost_estimate: CostEstimate | None = None


class BedReservationReleased(Event):
    """A request lost its reserved bed or its place in the queue, and why
    (scheduling.decisions): a critical-care request, or a bed manager's ward request
    (`level_of_care` is then the ward's).

    - `request_withdrawn`: diagnosis withdrew the request, or a bed manager cancelled it
      (`withdrawal_reason` says why: `cancelled` for a bed manager); `bed` is None when the
      request was only queued, and `ward` is then the patient's current ward.
    - `placed_in_named_bed`: the patient was placed in another bed of the ward, named by the EHR;
      the reserved bed was freed.
    - `bed_taken`: another change took the reserved bed (blocked, or another patient placed in
      it); the request is queued again at its original time (a BedReserved or BedRequestWaiting
      follows).
    - `reservation_expired`: the patient did not arrive within the hold time; the bed went back
      into use.
    """

    key_field: ClassVar[str] = "ward"
    kind: Literal["BedReservationReleased"] = "BedReservationReleased"
    patient_id: Identifier
    ward: Identifier
    bed: Identifier | None
    request_id: UUID
    level_of_care: LevelOfCare
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
