"""Fusion rules: one live state per patient, built from clean events (pure; `now` passed in).

The rules live in four modules, put together here around the table record (`PatientRecord`):
`adt.py` (encounter status and location, an event-time fold with the cancels), `readings.py`
(latest valid reading per parameter, one-hour trend, staleness), `care.py` (the care plan:
clinicians' instructions, latest by event time per instruction) and `throttle.py` (when a change
is worth a snapshot). The SpO2 scale is the latest `Spo2ScaleSet` by event time (1 until set).
Any change of the care plan goes out at once: the plan's digest is part of the signature's
location, as the SpO2 scale is.

- `handle` applies one event and emits a snapshot if the throttle says so; `flush` is the same
  decision without an event (the flush timer); `next_due` says when the timer should look again
  (a pending change's interval ends, or a fresh reading turns stale); `republish` rebuilds the
  last emitted snapshot exactly, for a worker that just took over the patient.
- `version` counts changes of the fused state made by events. Every rule is idempotent (latest by
  `(occurred_at, event_id)`, the ADT log keyed by `event_id`), so a redelivered event changes
  nothing and never bumps the version: reprocessing after a crash converges to the same record,
  without keeping a set of seen event ids.
- The snapshot id is `uuid5("wardflow:patient-state:<patient>:<version>")`, with
  `:stale=<parameters>` appended when readings are stale: a snapshot emitted only because a reading
  went stale keeps the version but gets its own id, so two snapshots share an id exactly when they
  show the same state. `cause_recorded_at` is the ingest time of the event that made the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from schemas.base import Contract, Identifier, UtcDatetime, evolve, value_class
from schemas.care import (
    AlertAcknowledged,
    CeilingOfCareSet,
    ParameterOverrideCleared,
    ParameterOverrideSet,
    SuspectedInfectionSet,
)
from schemas.observations import Spo2ScaleSet, VitalSignsRecorded
from schemas.patients import PatientStateUpdated
from services.fusion.adt import AdtEvent, AdtLog, record_adt
from services.fusion.care import CareEvent, CareRecord, digest, fold, plan
from services.fusion.reader import RecordedVitals, Vitals
from services.fusion.readings import (
    DEFAULT_MAX_AGE_SECONDS,
    Observations,
    Observed,
    is_stale,
    observe,
    readings,
)
from services.fusion.throttle import (
    Signature,
    Throttle,
    consciousness_severity,
    must_emit_now,
    numeric_severity,
    spo2_severity,
)

SOURCE = "wardflow-fusion"
ClinicalEvent = Vitals | Spo2ScaleSet | CareEvent | AdtEvent
Trigger = Literal["change", "interval"]


@dataclass(frozen=True)
class FusionPolicy:
    """Maximum age per parameter (defaults for those not named) and the throttle interval."""

    max_age_seconds: Mapping[str, float] = field(default_factory=dict)
    min_snapshot_interval_seconds: float = 60.0

    def __post_init__(self) -> None:
        merged = {**DEFAULT_MAX_AGE_SECONDS, **self.max_age_seconds}
        object.__setattr__(self, "max_age_seconds", merged)


@value_class(kw_only=True)
class ScaleTrack(Observed):
    scale: Literal[1, 2]


class PatientRecord(Contract):
    """What fusion keeps per patient: its table value (JSON), changelog-backed.

    `partition` is the events.clean partition of the patient's events: the record's changelog goes
    to the same partition, also when the flush timer writes it outside a stream.
    """

    patient_id: Identifier
    partition: int = 0
    version: int = 0
    changed_recorded_at: UtcDatetime | None = None
    adt: AdtLog = AdtLog()
    observations: Observations = Observations()
    spo2_scale: ScaleTrack | None = None
    care: CareRecord = CareRecord()
    throttle: Throttle = Throttle()

    @property
    def scale(self) -> Literal[1, 2]:
        return 1 if self.spo2_scale is None else self.spo2_scale.scale


@value_class
class Outcome:
    """The record after an event or a timer check, and the snapshot to emit, if any."""

    record: PatientRecord
    changed: bool
    snapshot: PatientStateUpdated | None = None
    trigger: Trigger | None = None


def _bumped(record: PatientRecord, event: ClinicalEvent, **update: object) -> PatientRecord:
    throttle = Throttle(
        pending=True, emitted_at=record.throttle.emitted_at, signature=record.throttle.signature
    )
    update |= {"version": record.version + 1, "changed_recorded_at": event.recorded_at}
    return evolve(record, **update, throttle=throttle)


def apply(record: PatientRecord, event: ClinicalEvent) -> PatientRecord:
    """The record with the event applied; the same object when the event changes nothing."""
    if isinstance(event, VitalSignsRecorded | RecordedVitals):
        observations = observe(record.observations, event)
        if observations is record.observations:
            return record
        return _bumped(record, event, observations=observations)
    if isinstance(event, Spo2ScaleSet):
        track = ScaleTrack(
            at=event.occurred_at,
            source=event.source,
            event_id=str(event.event_id),
            scale=event.scale,
        )
        if not track.is_newer_than(record.spo2_scale):
            return record
        if track.scale == record.scale:
            return evolve(record, spo2_scale=track)
        return _bumped(record, event, spo2_scale=track)
    if isinstance(
        event,
        CeilingOfCareSet
        | SuspectedInfectionSet
        | ParameterOverrideSet
        | ParameterOverrideCleared
        | AlertAcknowledged,
    ):
        care = fold(record.care, event)
        if care is record.care:
            return record
        if plan(care) == plan(record.care):
            return evolve(record, care=care)  # kept, but the plan is the same
        return _bumped(record, event, care=care)
    adt = record_adt(record.adt, event)
    if adt is record.adt:
        return record
    if adt.state == record.adt.state:
        return evolve(record, adt=adt)  # placed in the log, same state
    return _bumped(record, event, adt=adt)


def signature(record: PatientRecord, now: datetime, policy: FusionPolicy) -> Signature:
    state = record.adt.state
    location = f"{state.status}|{state.ward or ''}|{state.bed or ''}|{record.scale}"
    care = digest(record.care)
    if care:  # a patient without instructions keeps the signature it had before care plans
        location += f"|care={care}"
    observations = record.observations
    oxygen, level = observations.oxygen, observations.consciousness
    max_ages = policy.max_age_seconds
    severities: dict[str, int] = {}  # of each present, fresh reading
    for name, track in observations.numeric.items():
        if is_stale(track, name, now, max_ages):
            continue
        severities[name] = (
            spo2_severity(track.value, record.scale, oxygen is not None and oxygen.on_oxygen)
            if name == "spo2_percent"
            else numeric_severity(name, track.value)
        )
    if oxygen is not None and not is_stale(oxygen, "supplemental_oxygen", now, max_ages):
        severities["supplemental_oxygen"] = int(oxygen.on_oxygen)
    if level is not None and not is_stale(level, "consciousness", now, max_ages):
        severities["consciousness"] = consciousness_severity(level.level)
    return Signature(location=location, severities=severities)


def flush(record: PatientRecord, now: datetime, policy: FusionPolicy) -> Outcome:
    """Emit a snapshot if the throttle allows one now; `changed` is False when nothing was."""
    throttle = record.throttle
    if record.version == 0:
        return Outcome(record, changed=False)
    current = signature(record, now, policy)
    trigger: Trigger
    if throttle.emitted_at is None or must_emit_now(throttle.signature, current):
        trigger = "change"
    elif (throttle.pending or current != throttle.signature) and (
        now - throttle.emitted_at
    ).total_seconds() >= policy.min_snapshot_interval_seconds:
        trigger = "interval"
    else:
        return Outcome(record, changed=False)
    emitted = evolve(record, throttle=Throttle(pending=False, emitted_at=now, signature=current))
    return Outcome(emitted, True, snapshot(emitted, at=now, policy=policy), trigger)


def handle(
    record: PatientRecord | None,
    event: ClinicalEvent,
    *,
    now: datetime,
    partition: int,
    policy: FusionPolicy,
) -> Outcome:
    """Apply one clean event for the patient and emit a snapshot if the throttle says so."""
    base = record or PatientRecord(patient_id=event.patient_id, partition=partition)
    if base.partition != partition:
        base = evolve(base, partition=partition)
    applied = apply(base, event)
    if record is None and applied is base:
        return Outcome(base, changed=False)  # told us nothing about a patient we did not know
    outcome = flush(applied, now, policy)
    return Outcome(outcome.record, outcome.record is not record, outcome.snapshot, outcome.trigger)


def next_due(record: PatientRecord, policy: FusionPolicy) -> datetime | None:
    """When the throttle should look at the patient again without an event, if ever."""
    due = next_due_timestamp(record, policy)
    return None if due is None else datetime.fromtimestamp(due, UTC)


def next_due_timestamp(record: PatientRecord, policy: FusionPolicy) -> float | None:
    """`next_due` in Unix seconds (what the flush timer's index keeps; called for every event)."""
    throttle = record.throttle
    if throttle.emitted_at is None:
        return None
    emitted = throttle.emitted_at.timestamp()
    due = emitted + policy.min_snapshot_interval_seconds if throttle.pending else None
    max_ages = policy.max_age_seconds
    at, seconds = None, 0.0
    for name, track in record.observations.tracks().items():
        if track.at is not at:  # the readings of one event share its time: converted once
            at, seconds = track.at, track.at.timestamp()
        turns_stale = seconds + max_ages[name]
        if turns_stale >= emitted and (due is None or turns_stale < due):  # fresh when emitted
            due = turns_stale
    return due


def snapshot_id(patient_id: str, version: int, stale: list[str]) -> UUID:
    name = f"wardflow:patient-state:{patient_id}:{version}"
    return uuid5(NAMESPACE_URL, f"{name}:stale={','.join(stale)}" if stale else name)


def snapshot(record: PatientRecord, *, at: datetime, policy: FusionPolicy) -> PatientStateUpdated:
    """The patient's state as seen at `at` (staleness is judged at that time)."""
    shown = readings(record.observations, at, policy.max_age_seconds)
    stale = [name for name, reading in shown if reading is not None and reading.stale]
    state = record.adt.state
    return PatientStateUpdated(
        event_id=snapshot_id(record.patient_id, record.version, stale),
        occurred_at=at,
        recorded_at=at,
        source=SOURCE,
        patient_id=record.patient_id,
        version=record.version,
        spo2_scale=record.scale,
        encounter_status=state.status,
        ward=state.ward,
        bed=state.bed,
        readings=shown,
        care=plan(record.care),
        cause_recorded_at=record.changed_recorded_at or at,
    )


def republish(record: PatientRecord, policy: FusionPolicy) -> PatientStateUpdated | None:
    """The last emitted snapshot, identical (same id and content), if it still is the current
    state; a worker that takes over a patient sends it again in case a crash lost it."""
    emitted_at = record.throttle.emitted_at
    if emitted_at is None or record.throttle.pending:
        return None
    return snapshot(record, at=emitted_at, policy=policy)
