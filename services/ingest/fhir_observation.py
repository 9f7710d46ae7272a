"""FHIR R4 Observation (vital-signs profile, or a laboratory result) -> one VitalSignsObserved
inbound item.

The LOINC code decides what an Observation is, never its `category`: a white cell count or an
arterial PaCO2 comes with category "laboratory" and is read exactly like a vital sign.
A `dataAbsentReason` means the value is missing: it is left out, never recorded as zero.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.quantity import Quantity

from services.ingest.fhir_common import (
    Mapped,
    first_time,
    patient_mrn,
    reference_id,
    validate,
    without_none,
)
from services.ingest.mapping import (
    ACVPU,
    BLOOD_PRESSURE_PANEL,
    CONSCIOUSNESS_CODES,
    LOINC_PARAMETERS,
    InboundItem,
    MappingError,
)

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
_LOINC_CODE = re.compile(r"\d{1,7}-\d")
READ_CODES: dict[str, frozenset[str]] = {
    LOINC: frozenset(
        [*LOINC_PARAMETERS, BLOOD_PRESSURE_PANEL]
        + [code for code in CONSCIOUSNESS_CODES if _LOINC_CODE.fullmatch(code)]
    ),
    SNOMED: frozenset(code for code in CONSCIOUSNESS_CODES if not _LOINC_CODE.fullmatch(code)),
}
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"
OXYGEN_FLOW, FIO2 = "3151-8", "3150-0"

COUNTED_STATUSES = ("final", "amended", "corrected")
UNRECORDED_STATUSES = ("registered", "preliminary", "cancelled", "entered-in-error", "unknown")
ABSENT_NOTE = "dataAbsentReason: the value is missing, no vital sign recorded"


def map_observation(resource: dict[str, Any]) -> Mapped:
    observation = validate(Observation, resource, "Observation")
    meta = observation.meta
    version = meta.versionId if meta is not None else None

    def nothing(note: str) -> Mapped:
        return Mapped([], "Observation", observation.id, version, note)

    code = vital_sign_code(observation.code)
    status = observation.status
    if status not in COUNTED_STATUSES:
        if status in UNRECORDED_STATUSES:
            return nothing(f"status {status}: no vital sign recorded")
        raise MappingError("Observation.status", "value", "is not an R4 Observation status")
    patient = patient_mrn(observation.subject, "Observation")
    occurred_at = first_time(
        (observation.effectiveDateTime, "Observation.effectiveDateTime"),
        (
            observation.effectivePeriod.start if observation.effectivePeriod else None,
            "Observation.effectivePeriod.start",
        ),
        (observation.effectiveInstant, "Observation.effectiveInstant"),
    )
    if occurred_at is None:
        raise MappingError(
            "Observation.effective[x]",
            "required",
            "needs effectiveDateTime, effectivePeriod.start or effectiveInstant",
        )
    item: InboundItem = {
        "kind": "VitalSignsObserved",
        "occurred_at": occurred_at,
        "patient_id": patient,
        "device_id": observation.device and reference_id(observation.device.reference, "Device"),
    }
    if code == BLOOD_PRESSURE_PANEL:
        item["measurements"] = blood_pressure(observation)
    elif code in LOINC_PARAMETERS:
        measurement = _measurement(
            code, observation.valueQuantity, observation.dataAbsentReason, "Observation"
        )
        if measurement is not None:
            item["measurements"] = [measurement]
            item["supplemental_oxygen"] = _on_oxygen(code, observation.valueQuantity)
    else:
        item["consciousness"] = consciousness(observation)
    if not item.get("measurements") and item.get("consciousness") is None:
        return nothing(ABSENT_NOTE)
    return Mapped([without_none(item)], "Observation", observation.id, version)


def vital_sign_code(code: CodeableConcept) -> str:
    """The first coding wardflow reads: a LOINC vital sign or laboratory result, the BP panel,
    or an ACVPU code."""
    for coding in code.coding or []:
        if coding.system in READ_CODES and coding.code in READ_CODES[coding.system]:
            return coding.code
    raise MappingError(
        "Observation.code", "not-supported", "no vital-sign LOINC code wardflow reads"
    )


def blood_pressure(observation: Observation) -> list[dict[str, Any]]:
    """Systolic and diastolic from the panel's components; an absent one is left out."""
    measurements, found = [], False
    for index, component in enumerate(observation.component or []):
        code = next(
            (
                coding.code
                for coding in component.code.coding or []
                if coding.system == LOINC and coding.code in (SYSTOLIC, DIASTOLIC)
            ),
            None,
        )
        if code is None:
            continue  # e.g. mean arterial pressure: not read
        found = True
        path = f"Observation.component[{index}]"
        value = _measurement(code, component.valueQuantity, component.dataAbsentReason, path)
        if value is not None:
            measurements.append(value)
    if not found and observation.dataAbsentReason is None:
        raise MappingError(
            "Observation.component",
            "required",
            f"a blood pressure panel needs a systolic ({SYSTOLIC}) or diastolic ({DIASTOLIC}) "
            "component",
        )
    return measurements


def _measurement(
    code: str, quantity: Quantity | None, absent: CodeableConcept | None, path: str
) -> dict[str, Any] | None:
    if absent is not None:
        if quantity is not None:
            raise MappingError(
                f"{path}.dataAbsentReason", "invalid", "must not be sent together with a value"
            )
        return None
    if quantity is None:
        raise MappingError(
            f"{path}.valueQuantity",
            "required",
            "a vital sign needs valueQuantity or dataAbsentReason",
        )
    if quantity.value is None:
        raise MappingError(f"{path}.valueQuantity.value", "required", "is required")
    if quantity.comparator is not None:
        raise MappingError(
            f"{path}.valueQuantity.comparator", "not-supported", "a vital sign must be exact"
        )
    unit = quantity.code or quantity.unit
    if not unit:
        raise MappingError(f"{path}.valueQuantity.code", "required", "needs a UCUM code or unit")
    return {
        "parameter": LOINC_PARAMETERS[code],
        "value": float(quantity.value),
        "unit": unit,
        "loinc": code,
    }


def _on_oxygen(code: str, quantity: Quantity | None) -> bool | None:
    """Oxygen flow above 0, or FiO2 above room air (21 %), means supplemental oxygen."""
    if quantity is None or quantity.value is None:
        return None
    value: Decimal = quantity.value
    if code == OXYGEN_FLOW and value >= 0:
        return value > 0
    if code == FIO2:
        unit = quantity.code or quantity.unit
        percent = value * 100 if unit == "1" else value if unit == "%" else None
        return None if percent is None else percent > 21
    return None


def consciousness(observation: Observation) -> str | None:
    """ACVPU from valueCodeableConcept: a coding whose code is the letter, else the first letter
    of a coding's display or of the text ("Voice" -> V)."""
    concept = observation.valueCodeableConcept
    if observation.dataAbsentReason is not None:
        if concept is not None:
            raise MappingError(
                "Observation.dataAbsentReason", "invalid", "must not be sent together with a value"
            )
        return None
    if concept is None:
        raise MappingError(
            "Observation.valueCodeableConcept",
            "required",
            "level of consciousness needs valueCodeableConcept (ACVPU) or dataAbsentReason",
        )
    codings = concept.coding or []
    for code in [c.code for c in codings]:
        if code and code.upper() in ACVPU:
            return code.upper()
    for words in [*(c.display for c in codings), concept.text]:
        if words and words.strip()[:1].upper() in ACVPU:
            return words.strip()[:1].upper()
    raise MappingError(
        "Observation.valueCodeableConcept", "value", "must be one of ACVPU (A, C, V, P, U)"
    )
