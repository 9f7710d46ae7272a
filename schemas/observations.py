"""Observations context: vital signs as sent (events.raw) and in canonical units (events.clean)."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, StrictBool, model_validator

from schemas.base import Contract, Event, Identifier
from schemas.vocabulary import Consciousness, VitalParameter


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


FiniteFloat = Annotated[float, Strict(), AfterValidator(_finite)]
"""A finite number sent as a JSON number (a numeric string is refused, not guessed at)."""


class Measurement(Contract):
    """One measured value as the device sent it, in its own unit (UCUM code, e.g. `[degF]`)."""

    parameter: VitalParameter
    value: FiniteFloat
    unit: Annotated[str, Field(min_length=1, max_length=32)]
    loinc: Annotated[str, Field(pattern=r"^\d{1,7}-\d$")] | None = None


class VitalSignsObserved(Event):
    """Vital signs observed at the bedside, as sent by a monitor or the EHR (events.raw)."""

    kind: Literal["VitalSignsObserved"] = "VitalSignsObserved"
    patient_id: Identifier
    device_id: Identifier | None = None
    measurements: Annotated[list[Measurement], Field(max_length=32)] = []
    supplemental_oxygen: StrictBool | None = None
    consciousness: Consciousness | None = None

    @model_validator(mode="after")
    def _carries_an_observation(self) -> VitalSignsObserved:
        if (
            not self.measurements
            and self.supplemental_oxygen is None
            and self.consciousness is None
        ):
            raise ValueError(
                "carries no observation: give measurements, supplemental_oxygen or consciousness"
            )
        parameters = [m.parameter for m in self.measurements]
        if len(set(parameters)) == len(parameters):
            return self
        repeated = sorted({p.value for p in parameters if parameters.count(p) > 1})
        if repeated:
            raise ValueError(f"measurements repeat a parameter: {', '.join(repeated)}")
        return self


class VitalSigns(Contract):
    """Vital signs in canonical units; a field is None when it was not observed."""

    heart_rate_bpm: float | None = None
    respiratory_rate_per_min: float | None = None
    spo2_percent: float | None = None
    systolic_bp_mmhg: float | None = None
    diastolic_bp_mmhg: float | None = None
    temperature_celsius: float | None = None
    oxygen_flow_l_per_min: float | None = None
    fio2_percent: float | None = None
    on_supplemental_oxygen: bool | None = None
    consciousness: Consciousness | None = None


class MeasurementOrigin(Contract):
    """Where a canonical value came from: the code and the value and unit as originally sent."""

    parameter: VitalParameter
    loinc: str | None
    original_value: float
    original_unit: str


class VitalSignsRecorded(Event):
    """Vital signs after cleaning: canonical units, plausible values only (events.clean)."""

    kind: Literal["VitalSignsRecorded"] = "VitalSignsRecorded"
    patient_id: Identifier
    device_id: Identifier | None = None
    vitals: VitalSigns
    origins: list[MeasurementOrigin] = []
