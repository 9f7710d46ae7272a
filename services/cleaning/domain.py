"""Cleaning rules: canonical units, physiological plausibility, duplicate suppression.

Pure functions over `schemas` events. A value outside what a living patient can show is *impossible*
and the whole event is refused with the field and the limit; nothing is half-applied.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from schemas.observations import (
    Measurement,
    MeasurementOrigin,
    VitalSigns,
    VitalSignsObserved,
    VitalSignsRecorded,
)
from schemas.vocabulary import VitalParameter


class CleaningRejection(Exception):
    """An event that cannot be cleaned; `reason` is a stable machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class CanonicalForm:
    field: str  # field of VitalSigns, unit in its name
    units: dict[str, Callable[[float], float]]  # accepted UCUM unit -> conversion to canonical
    lowest: float  # inclusive physiological limits, in the canonical unit
    highest: float


def _same(value: float) -> float:
    return value


def _per_second(value: float) -> float:
    return value * 60.0


_MMHG_PER_KPA = 7.500615758

CANONICAL: dict[VitalParameter, CanonicalForm] = {
    VitalParameter.HEART_RATE: CanonicalForm(
        "heart_rate_bpm",
        {"/min": _same, "{beats}/min": _same, "bpm": _same, "/s": _per_second},
        0.0,
        300.0,
    ),
    VitalParameter.RESPIRATORY_RATE: CanonicalForm(
        "respiratory_rate_per_min",
        {"/min": _same, "{breaths}/min": _same, "/s": _per_second},
        0.0,
        100.0,
    ),
    VitalParameter.SPO2: CanonicalForm(
        "spo2_percent", {"%": _same, "1": lambda fraction: fraction * 100.0}, 0.0, 100.0
    ),
    VitalParameter.SYSTOLIC_BP: CanonicalForm(
        "systolic_bp_mmhg",
        {"mm[Hg]": _same, "mmHg": _same, "kPa": lambda v: v * _MMHG_PER_KPA},
        0.0,
        350.0,
    ),
    VitalParameter.DIASTOLIC_BP: CanonicalForm(
        "diastolic_bp_mmhg",
        {"mm[Hg]": _same, "mmHg": _same, "kPa": lambda v: v * _MMHG_PER_KPA},
        0.0,
        300.0,
    ),
    VitalParameter.TEMPERATURE: CanonicalForm(
        "temperature_celsius",
        {
            "Cel": _same,
            "[degF]": lambda f: (f - 32.0) * 5.0 / 9.0,
            "K": lambda k: k - 273.15,
        },
        25.0,
        45.0,
    ),
    VitalParameter.OXYGEN_FLOW: CanonicalForm(
        "oxygen_flow_l_per_min",
        {"L/min": _same, "l/min": _same, "mL/min": lambda v: v / 1000.0},
        0.0,
        80.0,
    ),
    VitalParameter.FIO2: CanonicalForm(
        "fio2_percent", {"%": _same, "1": lambda fraction: fraction * 100.0}, 21.0, 100.0
    ),
}


def to_canonical(measurement: Measurement) -> tuple[str, float]:
    """The canonical field and value of one measurement, or a rejection naming why."""
    form = CANONICAL[measurement.parameter]
    convert = form.units.get(measurement.unit)
    if convert is None:
        accepted = ", ".join(sorted(form.units))
        raise CleaningRejection(
            "unknown_unit",
            f"{measurement.parameter.value}: unit {measurement.unit!r} is not one of {accepted}",
        )
    value = round(convert(measurement.value), 2)
    if not form.lowest <= value <= form.highest:
        raise CleaningRejection(
            "impossible_value",
            f"{form.field}={value:g} is outside the physiological range "
            f"{form.lowest:g}-{form.highest:g}",
        )
    return form.field, value


def clean_vital_signs(event: VitalSignsObserved) -> VitalSignsRecorded:
    """Convert every measurement to its canonical unit and check it is physiologically possible."""
    values: dict[str, float] = {}
    origins = []
    for measurement in event.measurements:
        field, value = to_canonical(measurement)
        values[field] = value
        origins.append(
            MeasurementOrigin(
                parameter=measurement.parameter,
                loinc=measurement.loinc,
                original_value=measurement.value,
                original_unit=measurement.unit,
            )
        )
    systolic, diastolic = values.get("systolic_bp_mmhg"), values.get("diastolic_bp_mmhg")
    if systolic is not None and diastolic is not None and diastolic > systolic:
        raise CleaningRejection(
            "impossible_value",
            f"diastolic_bp_mmhg={diastolic:g} is above systolic_bp_mmhg={systolic:g}",
        )
    vitals = VitalSigns(
        **values,
        on_supplemental_oxygen=event.supplemental_oxygen,
        consciousness=event.consciousness,
    )
    return VitalSignsRecorded(
        event_id=event.event_id,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        source=event.source,
        patient_id=event.patient_id,
        device_id=event.device_id,
        vitals=vitals,
        origins=origins,
    )


class DedupeWindow:
    """Remembers the last `capacity` event ids; bounded memory whatever the traffic."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[UUID, None] = OrderedDict()

    def first_time(self, event_id: UUID) -> bool:
        """True the first time an id is seen (and remembers it); False for a repeat."""
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return False
        self._seen[event_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
