"""Patient state context: one fused, live state per patient (patients.state, compacted)."""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, Event, Identifier, UtcDatetime
from schemas.care import CarePlan
from schemas.vocabulary import Consciousness


class NumericReading(Contract):
    """The latest valid value of one parameter, when it was observed and by which source.

    `stale` is true when, at the snapshot's time, the reading was older than the parameter's
    maximum age; `change_1h` is the change since the oldest reading of the last hour (None when
    there is none to compare with).
    """

    value: float
    observed_at: UtcDatetime
    source: str
    stale: bool = False
    change_1h: float | None = None


class OxygenReading(Contract):
    on_supplemental_oxygen: bool
    observed_at: UtcDatetime
    source: str
    stale: bool = False


class ConsciousnessReading(Contract):
    level: Consciousness
    observed_at: UtcDatetime
    source: str
    stale: bool = False


class PatientReadings(Contract):
    """Latest reading per parameter; None means never observed (not normal)."""

    heart_rate_bpm: NumericReading | None = None
    respiratory_rate_per_min: NumericReading | None = None
    spo2_percent: NumericReading | None = None
    systolic_bp_mmhg: NumericReading | None = None
    diastolic_bp_mmhg: NumericReading | None = None
    temperature_celsius: NumericReading | None = None
    oxygen_flow_l_per_min: NumericReading | None = None
    fio2_percent: NumericReading | None = None
    white_cell_count_10e9_per_l: NumericReading | None = None
    paco2_mmhg: NumericReading | None = None
    supplemental_oxygen: OxygenReading | None = None
    consciousness: ConsciousnessReading | None = None


EncounterStatus = Literal["unknown", "in_progress", "finished"]


class PatientStateUpdated(Event):
    """A snapshot of a patient's fused state after a change.

    `cause_recorded_at` is when ingest accepted the event that caused this snapshot, so
    consumers can measure end-to-end latency.
    """

    kind: Literal["PatientStateUpdated"] = "PatientStateUpdated"
    patient_id: Identifier
    version: int
    spo2_scale: Literal[1, 2] = 1
    encounter_status: EncounterStatus = "unknown"
    ward: Identifier | None = None
    bed: Identifier | None = None
    readings: PatientReadings
    care: CarePlan = CarePlan()
    cause_recorded_at: UtcDatetime
