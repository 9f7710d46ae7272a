"""Small shared vocabularies (enumerations) used across contexts."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args


class VitalParameter(StrEnum):
    """A vital sign parameter, named as in clinical practice."""

    HEART_RATE = "heart_rate"
    RESPIRATORY_RATE = "respiratory_rate"
    SPO2 = "spo2"
    SYSTOLIC_BP = "systolic_bp"
    DIASTOLIC_BP = "diastolic_bp"
    TEMPERATURE = "temperature"
    OXYGEN_FLOW = "oxygen_flow"  # inhaled oxygen flow rate, L/min (LOINC 3151-8)
    FIO2 = "fio2"  # inhaled oxygen concentration, % (LOINC 3150-0)
    BLOOD_PRESSURE = "blood_pressure"  # composite "systolic/diastolic", split by cleaning
    WHITE_CELL_COUNT = "white_cell_count"  # laboratory: leukocytes, 10^9/L (LOINC 6690-2)
    PACO2 = "paco2"  # laboratory: arterial partial pressure of CO2, mmHg (LOINC 2019-8)


class Consciousness(StrEnum):
    """ACVPU: Alert, new Confusion, responds to Voice, to Pain, Unresponsive."""

    ALERT = "A"
    NEW_CONFUSION = "C"
    VOICE = "V"
    PAIN = "P"
    UNRESPONSIVE = "U"


class BedStatus(StrEnum):
    """Bed lifecycle (after HL7 v2 table 0116, bed status)."""

    AVAILABLE = "available"
    RESERVED = "reserved"
    OCCUPIED = "occupied"
    DIRTY = "dirty"
    CLEANING = "cleaning"
    BLOCKED = "blocked"


class Band(StrEnum):
    """NEWS2 clinical risk band (RCP 2017)."""

    LOW = "low"
    LOW_MEDIUM = "low_medium"
    MEDIUM = "medium"
    HIGH = "high"


class LevelOfCare(StrEnum):
    """What a ward provides: emergency department, general ward, high dependency, intensive care."""

    EMERGENCY = "emergency"
    GENERAL = "general"
    HDU = "hdu"
    ICU = "icu"


Capability = Literal["isolation", "telemetry", "ventilator", "bariatric"]
"""What a bed can offer, and a patient may need: a side room for isolation, cardiac telemetry,
a ventilator, a bariatric bed. Small and fixed: the layout gives beds capabilities from it."""
CAPABILITIES: tuple[str, ...] = get_args(Capability)

Sex = Literal["female", "male", "other", "unknown"]
"""A patient's administrative sex, as bed matching uses it (HL7 table 0001: F, M, O, U)."""

BaySex = Literal["female", "male", "mixed"]
"""A bay's sex policy: a single-sex bay takes patients of that sex only, a mixed bay anyone."""
BAY_SEXES: tuple[str, ...] = get_args(BaySex)
