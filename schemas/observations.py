"""Observations context: vital signs as sent (events.raw) and in canonical units (events.clean)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, StrictBool, model_validator

from schemas.base import Contract, Event, Identifier
from schemas.vocabulary import Consciousness, VitalParameter

FiniteFloat = Annotated[float, Strict(), Field(allow_inf_nan=False)]
"""A finite number sent as a JSON number (a numeric string is refused, not guessed at; NaN and
infinities, also a JSON number too large for a float, are refused)."""


class Measurement(Contract):
    """One measured value as the device sent it, in its own unit (UCUM code, e.g. `[degF]`).

    Either `parameter` is known, or `code` (with `code_system`) names it in the sender's own terms
    and cleaning maps it (LOINC, or the operator's local code map). `value` is a number; `text`
    carries a value a sender could only give as text, such as a composite "140/90". `unit` may
    be missing only where cleaning can resolve it (a temperature, by its plausible range).
    """

    parameter: VitalParameter | None = None
    code: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    code_system: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    value: FiniteFloat | None = None
    text: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    unit: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    loinc: Annotated[str, Field(pattern=r"^\d{1,7}-\d$")] | None = None

    @model_validator(mode="after")
    def _names_a_parameter_and_a_value(self) -> Measurement:
        if self.parameter is None and self.code is None and self.loinc is None:
            raise ValueError("needs a parameter, a code or a loinc code")
        if (self.value is None) == (self.text is None):
            raise ValueError("needs exactly one of value (a number) or text")
        return self


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
        parameters = [m.parameter for m in self.measurements if m.parameter is not None]
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
    white_cell_count_10e9_per_l: float | None = None
    paco2_mmhg: float | None = None
    on_supplemental_oxygen: bool | None = None
    consciousness: Consciousness | None = None


class MeasurementOrigin(Contract):
    """Where a canonical value came from: the code and the value and unit as originally sent.

    `unit_inferred` says the sender gave no unit and cleaning chose `original_unit` from the
    value's plausible range (recorded, so a reviewer can see the choice).
    """

    parameter: VitalParameter
    loinc: str | None
    code: str | None = None
    original_value: float | str
    original_unit: str
    unit_inferred: bool = False


ArtifactReason = Literal["probe_off", "zeroing", "flat_line"]


class ArtifactFlag(Contract):
    """A value that is physiologically possible but almost certainly a sensor fault: kept here,
    flagged, and never used as a vital sign."""

    parameter: VitalParameter
    value: float
    unit: str
    reason: ArtifactReason


class VitalSignsRecorded(Event):
    """Vital signs after cleaning: canonical units, plausible values only (events.clean)."""

    kind: Literal["VitalSignsRecorded"] = "VitalSignsRecorded"
    patient_id: Identifier
    device_id: Identifier | None = None
    vitals: VitalSigns
    origins: list[MeasurementOrigin] = []
    artifacts: list[ArtifactFlag] = []
    late: bool = False  # older than state retention: cleaned, flagged, never overwrites newer


class Spo2ScaleSet(Event):
    """A clinician set which NEWS2 SpO2 scale applies to a patient: 2 only for confirmed
    hypercapnic respiratory failure, on clinical instruction; 1 otherwise."""

    kind: Literal["Spo2ScaleSet"] = "Spo2ScaleSet"
    patient_id: Identifier
    scale: Literal[1, 2]
    set_by_role: Annotated[str, Field(min_length=1, max_length=64)] | None = None
