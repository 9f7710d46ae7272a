"""Fusion rules: one live state per patient, built from clean events in event-time order.

Pure functions: a late observation never replaces a newer one, an ADT event older than the last one
applied is ignored, and re-applying an event changes nothing (at-least-once redelivery is harmless).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from schemas.admissions import PatientAdmitted, PatientDischarged, PatientTransferred
from schemas.base import Contract, Identifier, UtcDatetime
from schemas.observations import VitalSignsRecorded
from schemas.patients import (
    ConsciousnessReading,
    EncounterStatus,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)

NUMERIC_FIELDS = (
    "heart_rate_bpm",
    "respiratory_rate_per_min",
    "spo2_percent",
    "systolic_bp_mmhg",
    "diastolic_bp_mmhg",
    "temperature_celsius",
)

AdtEvent = PatientAdmitted | PatientTransferred | PatientDischarged


class PatientRecord(Contract):
    """What fusion keeps per patient (its table value)."""

    patient_id: Identifier
    version: int = 0
    encounter_status: EncounterStatus = "unknown"
    ward: Identifier | None = None
    bed: Identifier | None = None
    readings: PatientReadings = PatientReadings()
    adt_occurred_at: UtcDatetime | None = None


def _is_newer(candidate: datetime, current: Any) -> bool:
    return current is None or candidate > current.observed_at


def apply_vital_signs(record: PatientRecord, event: VitalSignsRecorded) -> PatientRecord | None:
    """The record with every newer reading of the event applied, or None when nothing changed."""
    changes: dict[str, Any] = {}
    observed_at, source = event.occurred_at, event.source
    for field in NUMERIC_FIELDS:
        value = getattr(event.vitals, field)
        if value is not None and _is_newer(observed_at, getattr(record.readings, field)):
            changes[field] = NumericReading(value=value, observed_at=observed_at, source=source)
    oxygen = event.vitals.on_supplemental_oxygen
    if oxygen is not None and _is_newer(observed_at, record.readings.supplemental_oxygen):
        changes["supplemental_oxygen"] = OxygenReading(
            on_supplemental_oxygen=oxygen, observed_at=observed_at, source=source
        )
    level = event.vitals.consciousness
    if level is not None and _is_newer(observed_at, record.readings.consciousness):
        changes["consciousness"] = ConsciousnessReading(
            level=level, observed_at=observed_at, source=source
        )
    if not changes:
        return None
    readings = record.readings.model_copy(update=changes)
    return record.model_copy(update={"readings": readings, "version": record.version + 1})


def apply_adt(record: PatientRecord, event: AdtEvent) -> PatientRecord | None:
    """The record after an admission, transfer or discharge, unless an ADT event after it
    (in event time) was already applied."""
    if record.adt_occurred_at is not None and event.occurred_at <= record.adt_occurred_at:
        return None
    update: dict[str, Any] = {"adt_occurred_at": event.occurred_at, "version": record.version + 1}
    if isinstance(event, PatientDischarged):
        update |= {"encounter_status": "finished", "ward": event.ward, "bed": None}
    else:
        update |= {"encounter_status": "in_progress", "ward": event.ward, "bed": event.bed}
    return record.model_copy(update=update)


def apply(record: PatientRecord | None, event: Any) -> PatientRecord | None:
    """Apply any clean clinical event; None when the state did not change."""
    current = record or PatientRecord(patient_id=event.patient_id)
    if isinstance(event, VitalSignsRecorded):
        return apply_vital_signs(current, event)
    if isinstance(event, PatientAdmitted | PatientTransferred | PatientDischarged):
        return apply_adt(current, event)
    return None


def snapshot_id(record: PatientRecord) -> UUID:
    """Deterministic per (patient, version): a redelivered event yields the same snapshot id."""
    return uuid5(NAMESPACE_URL, f"wardflow:patient-state:{record.patient_id}:{record.version}")


def snapshot(
    record: PatientRecord, *, now: datetime, source: str, cause_recorded_at: datetime
) -> PatientStateUpdated:
    return PatientStateUpdated(
        event_id=snapshot_id(record),
        occurred_at=now,
        recorded_at=now,
        source=source,
        patient_id=record.patient_id,
        version=record.version,
        encounter_status=record.encounter_status,
        ward=record.ward,
        bed=record.bed,
        readings=record.readings,
        cause_recorded_at=cause_recorded_at,
    )
