"""Care context: a clinician's instructions about one patient, and acknowledgements of alerts.

These arrive through ingest like any other event (events.raw -> events.clean), fusion folds them
into the patient's state (`PatientStateUpdated.care`), and diagnosis honours them. Each names the
*role* that gave it (never a person), so a reviewer can see on whose authority a score changed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StrictBool, model_validator

from schemas.base import Contract, Event, Identifier, UtcDatetime
from schemas.observations import FiniteFloat

Role = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9 ._\-]*$")]
"""The role that gave an instruction ("registered nurse", "ICU consultant"): never a name."""

CeilingOfCare = Literal["general", "hdu", "icu"]
"""The highest level of care appropriate for a patient: "general" = ward-based care only,
"hdu" = not for ICU, "icu" = full escalation (no ceiling, the default)."""

OverridableParameter = Literal[
    "respiratory_rate_per_min",
    "spo2_percent",
    "systolic_bp_mmhg",
    "heart_rate_bpm",
    "temperature_celsius",
]
"""NEWS2 parameters a clinician may accept a patient-specific range for."""

MAX_OVERRIDE = timedelta(days=7)


class CeilingOfCareSet(Event):
    """A treatment-escalation plan: the highest level of care for this patient. Below "icu" no
    ICU bed is requested; at "general" no HDU/ICU bed is requested at all, and responses say why."""

    kind: Literal["CeilingOfCareSet"] = "CeilingOfCareSet"
    patient_id: Identifier
    ceiling: CeilingOfCare
    set_by_role: Role


class SuspectedInfectionSet(Event):
    """A clinician suspects (or no longer suspects) infection: the sepsis pathway applies."""

    kind: Literal["SuspectedInfectionSet"] = "SuspectedInfectionSet"
    patient_id: Identifier
    suspected: StrictBool
    set_by_role: Role


class ParameterOverrideSet(Event):
    """A clinician accepts `low`..`high` as this patient's usual range for one NEWS2 parameter
    until `expires_at` (at most 7 days): readings in that range score 0, shown as overridden."""

    kind: Literal["ParameterOverrideSet"] = "ParameterOverrideSet"
    patient_id: Identifier
    parameter: OverridableParameter
    low: FiniteFloat
    high: FiniteFloat
    expires_at: UtcDatetime
    set_by_role: Role

    @model_validator(mode="after")
    def _a_range_that_ends(self) -> ParameterOverrideSet:
        if self.low > self.high:
            raise ValueError("low must not be above high")
        if self.expires_at <= self.occurred_at:
            raise ValueError("expires_at must be after occurred_at")
        if self.expires_at - self.occurred_at > MAX_OVERRIDE:
            raise ValueError("expires_at may be at most 7 days after occurred_at")
        return self


class ParameterOverrideCleared(Event):
    """A clinician withdrew a parameter override before it expired."""

    kind: Literal["ParameterOverrideCleared"] = "ParameterOverrideCleared"
    patient_id: Identifier
    parameter: OverridableParameter
    set_by_role: Role


class AlertAcknowledged(Event):
    """Someone in `acknowledged_by_role` has seen the patient's alert. `assessment_id` names the
    alert (the assessment that raised it); without it, every alert raised up to `occurred_at`."""

    kind: Literal["AlertAcknowledged"] = "AlertAcknowledged"
    patient_id: Identifier
    assessment_id: UUID | None = None
    acknowledged_by_role: Role


CARE_EVENTS = (
    CeilingOfCareSet,
    SuspectedInfectionSet,
    ParameterOverrideSet,
    ParameterOverrideCleared,
    AlertAcknowledged,
)


class ParameterOverride(Contract):
    """An override in force (or expired: diagnosis compares `expires_at` with its clock)."""

    parameter: OverridableParameter
    low: float
    high: float
    expires_at: UtcDatetime
    set_by_role: str
    set_at: UtcDatetime


class Acknowledgement(Contract):
    """The latest acknowledgement of the patient's alerts."""

    assessment_id: UUID | None = None
    acknowledged_at: UtcDatetime
    acknowledged_by_role: str


class CarePlan(Contract):
    """The clinical instructions in force for a patient, as fusion folded them (latest by event
    time per instruction)."""

    ceiling: CeilingOfCare = "icu"
    ceiling_set_by_role: str | None = None
    suspected_infection: bool = False
    overrides: list[ParameterOverride] = []
    acknowledgement: Acknowledgement | None = None
