"""One measurement to canonical readings: composite values, unitless temperatures, units, limits.

Pure. A reading that breaks a physiological limit, names no unit it could be in, or cannot be read
raises a `CleaningRejection` naming the parameter and the rule (and the value only when it broke a
limit), so that the whole event is dead-lettered.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, NoReturn

from schemas.observations import Measurement
from schemas.vocabulary import VitalParameter
from services.cleaning.codes import LOINC_SYSTEMS
from services.cleaning.units import (
    UnknownUnit,
    accepted_units,
    infer_temperature_unit,
    to_canonical_unit,
)


class CleaningRejection(Exception):
    """An event that cannot be cleaned; `reason` is a stable machine-readable code.

    `detail` names the field and the rule; it states a value only when the value broke a limit.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


FIELDS: dict[VitalParameter, str] = {
    VitalParameter.HEART_RATE: "heart_rate_bpm",
    VitalParameter.RESPIRATORY_RATE: "respiratory_rate_per_min",
    VitalParameter.SPO2: "spo2_percent",
    VitalParameter.SYSTOLIC_BP: "systolic_bp_mmhg",
    VitalParameter.DIASTOLIC_BP: "diastolic_bp_mmhg",
    VitalParameter.TEMPERATURE: "temperature_celsius",
    VitalParameter.OXYGEN_FLOW: "oxygen_flow_l_per_min",
    VitalParameter.FIO2: "fio2_percent",
    VitalParameter.WHITE_CELL_COUNT: "white_cell_count_10e9_per_l",
    VitalParameter.PACO2: "paco2_mmhg",
}
"""The `VitalSigns` field of each measured parameter (its canonical unit is in the name)."""

LIMITS: dict[VitalParameter, tuple[float, float]] = {
    VitalParameter.HEART_RATE: (0.0, 300.0),
    VitalParameter.RESPIRATORY_RATE: (0.0, 100.0),
    VitalParameter.SPO2: (0.0, 100.0),
    VitalParameter.SYSTOLIC_BP: (0.0, 350.0),
    VitalParameter.DIASTOLIC_BP: (0.0, 300.0),
    VitalParameter.TEMPERATURE: (25.0, 45.0),
    VitalParameter.OXYGEN_FLOW: (0.0, 80.0),
    VitalParameter.FIO2: (21.0, 100.0),
    VitalParameter.WHITE_CELL_COUNT: (0.0, 500.0),  # 10^9/L; leukaemias reach a few hundred
    VitalParameter.PACO2: (5.0, 200.0),  # mmHg
}
"""Inclusive physiological limits in the canonical unit; beyond them a value is impossible."""

_SYSTOLIC, _DIASTOLIC = VitalParameter.SYSTOLIC_BP, VitalParameter.DIASTOLIC_BP
_BLOOD_PRESSURE, _TEMPERATURE = VitalParameter.BLOOD_PRESSURE, VitalParameter.TEMPERATURE
_COMPOSITE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*")


class Reading(NamedTuple):
    """One canonical value and where it came from."""

    parameter: VitalParameter
    value: float
    origin: dict[str, Any]  # the fields of its MeasurementOrigin


def read_measurement(measurement: Measurement, parameter: VitalParameter) -> list[Reading]:
    """The canonical readings of one measurement: two for a composite blood pressure."""
    value, text, unit = measurement.value, measurement.text, measurement.unit
    if parameter is _BLOOD_PRESSURE:
        parts = _COMPOSITE.fullmatch(text) if text is not None else None
        if parts is None or text is None:
            raise CleaningRejection(
                "unparseable_value", "blood_pressure: the value is not systolic/diastolic"
            )
        if unit is None:
            _missing_unit(parameter)
        return [
            _reading(_SYSTOLIC, float(parts[1]), unit, measurement, text),
            _reading(_DIASTOLIC, float(parts[2]), unit, measurement, text),
        ]
    if value is None:
        raise CleaningRejection("unparseable_value", f"{parameter.value}: text is not a number")
    if unit is not None:
        return [_reading(parameter, value, unit, measurement, value)]
    if parameter is not _TEMPERATURE:
        _missing_unit(parameter)
    inferred = infer_temperature_unit(value)
    if inferred is None:
        raise CleaningRejection(
            "impossible_value",
            f"temperature={value:g} without a unit is in neither plausible range, "
            "25-45 Cel or 77-113 [degF]",
        )
    return [_reading(parameter, value, inferred, measurement, value, inferred=True)]


def _missing_unit(parameter: VitalParameter) -> NoReturn:
    accepted = ", ".join(accepted_units(parameter if parameter in LIMITS else _SYSTOLIC))
    raise CleaningRejection("missing_unit", f"{parameter.value}: no unit; send one of {accepted}")


def _reading(
    parameter: VitalParameter,
    value: float,
    unit: str,
    measurement: Measurement,
    original: float | str,
    *,
    inferred: bool = False,
) -> Reading:
    try:
        canonical = round(to_canonical_unit(parameter, unit, value), 2)
    except UnknownUnit:
        accepted = ", ".join(accepted_units(parameter))
        raise CleaningRejection(
            "unknown_unit", f"{parameter.value}: unit {unit!r} is not one of {accepted}"
        ) from None
    lowest, highest = LIMITS[parameter]
    if not lowest <= canonical <= highest:
        raise CleaningRejection(
            "impossible_value",
            f"{FIELDS[parameter]}={canonical:g} is outside the physiological range "
            f"{lowest:g}-{highest:g}",
        )
    origin = {
        "parameter": parameter,
        "loinc": measurement.loinc or _loinc_code(measurement),
        "code": measurement.code,
        "original_value": original,
        "original_unit": unit,
        "unit_inferred": inferred,
    }
    return Reading(parameter, canonical, origin)


def _loinc_code(measurement: Measurement) -> str | None:
    return measurement.code if measurement.code_system in LOINC_SYSTEMS else None
