"""NEWS2 scoring (RCP 2017): pure functions from a patient state to an assessment.

No I/O, no clock, no environment: the caller passes `now` and a `ScoringPolicy`. Values arrive as
floats, so every row of the table is matched by comparing with `<=` against its upper bound (a
respiration rate of 20.5 falls in the 21-24 row, a temperature of 38.05 in the 38.1-39.0 row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from schemas.assessments import AssessmentIssued, ParameterStatus, SubScore
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Band, Consciousness

NEWS2_PARAMETERS: tuple[str, ...] = (
    "respiratory_rate_per_min",
    "spo2_percent",
    "supplemental_oxygen",
    "systolic_bp_mmhg",
    "heart_rate_bpm",
    "consciousness",
    "temperature_celsius",
)
"""The seven NEWS2 parameters, named as the `PatientReadings` fields, in chart order."""

DEFAULT_MAX_AGE_SECONDS = 3600.0

INCOMPLETE_PREFIX = "INCOMPLETE: missing or stale parameters; obtain a full set of observations. "
RESPONSE_ROUTINE = "Continue routine NEWS monitoring, minimum 12-hourly"
RESPONSE_LOW = "Inform registered nurse; increase monitoring to minimum 4-6-hourly"
RESPONSE_LOW_MEDIUM = (
    "Urgent ward-based response: registered nurse to inform medical team;"
    " minimum 1-hourly monitoring"
)
RESPONSE_MEDIUM = (
    "Urgent response: registered nurse to inform medical team urgently;"
    " minimum 1-hourly monitoring; consider critical care outreach"
)
RESPONSE_HIGH = (
    "Emergency response: immediate assessment by critical-care-competent team; continuous"
    " monitoring; consider transfer to HDU/ICU"
)


def _default_max_ages() -> dict[str, float]:
    return dict.fromkeys(NEWS2_PARAMETERS, DEFAULT_MAX_AGE_SECONDS)


@dataclass(frozen=True)
class ScoringPolicy:
    """How old a reading may be and still count, per parameter, and which SpO2 scale applies."""

    max_age_seconds: dict[str, float] = field(default_factory=_default_max_ages)
    spo2_scale: int = 1

    def __post_init__(self) -> None:
        unknown = sorted(set(self.max_age_seconds) - set(NEWS2_PARAMETERS))
        if unknown:
            raise ValueError(f"unknown NEWS2 parameters in max_age_seconds: {unknown}")
        if self.spo2_scale not in (1, 2):
            raise ValueError(f"spo2_scale must be 1 or 2, not {self.spo2_scale}")

    def max_age_for(self, parameter: str) -> float:
        return self.max_age_seconds.get(parameter, DEFAULT_MAX_AGE_SECONDS)


def _lookup(value: float, rows: tuple[tuple[float, int], ...], above: int) -> int:
    """Points of the first row whose upper bound is at least `value`; `above` past the last row."""
    return next((points for upper, points in rows if value <= upper), above)


def respiration_points(rate: float) -> int:
    return _lookup(rate, ((8, 3), (11, 1), (20, 0), (24, 2)), above=3)


def spo2_scale1_points(percent: float) -> int:
    return _lookup(percent, ((91, 3), (93, 2), (95, 1)), above=0)


def spo2_scale2_points(percent: float, on_oxygen: bool) -> int:
    if not on_oxygen and percent > 92:
        return 0
    return _lookup(percent, ((83, 3), (85, 2), (87, 1), (92, 0), (94, 1), (96, 2)), above=3)


def oxygen_points(on_oxygen: bool) -> int:
    return 2 if on_oxygen else 0


def systolic_points(mmhg: float) -> int:
    return _lookup(mmhg, ((90, 3), (100, 2), (110, 1), (219, 0)), above=3)


def pulse_points(bpm: float) -> int:
    return _lookup(bpm, ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2)), above=3)


def consciousness_points(level: Consciousness) -> int:
    return 0 if level == Consciousness.ALERT else 3


def temperature_points(celsius: float) -> int:
    return _lookup(celsius, ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1)), above=2)


def band_for(aggregate: int, any_single_three: bool) -> Band:
    if aggregate >= 7:
        return Band.HIGH
    if aggregate >= 5:
        return Band.MEDIUM
    return Band.LOW_MEDIUM if any_single_three else Band.LOW


def clinical_response(aggregate: int, band: Band | None, complete: bool) -> str:
    """The RCP response for a band; an incomplete score always says so first."""
    if band is None:
        return INCOMPLETE_PREFIX.rstrip()
    responses = {
        Band.LOW: RESPONSE_ROUTINE if aggregate == 0 else RESPONSE_LOW,
        Band.LOW_MEDIUM: RESPONSE_LOW_MEDIUM,
        Band.MEDIUM: RESPONSE_MEDIUM,
        Band.HIGH: RESPONSE_HIGH,
    }
    return responses[band] if complete else INCOMPLETE_PREFIX + responses[band]


_UNITS: dict[str, str | None] = {
    "respiratory_rate_per_min": "/min",
    "spo2_percent": "%",
    "supplemental_oxygen": None,
    "systolic_bp_mmhg": "mmHg",
    "heart_rate_bpm": "bpm",
    "consciousness": None,
    "temperature_celsius": "Cel",
}
_POINTS: dict[str, Callable[[Any], int]] = {
    "respiratory_rate_per_min": respiration_points,
    "spo2_percent": spo2_scale1_points,
    "supplemental_oxygen": oxygen_points,
    "systolic_bp_mmhg": systolic_points,
    "heart_rate_bpm": pulse_points,
    "consciousness": lambda level: consciousness_points(Consciousness(level)),
    "temperature_celsius": temperature_points,
}


def _value(reading: NumericReading | OxygenReading | ConsciousnessReading) -> float | str | bool:
    if isinstance(reading, NumericReading):
        return reading.value
    if isinstance(reading, OxygenReading):
        return reading.on_supplemental_oxygen
    return reading.level.value


def _status(
    parameter: str, readings: PatientReadings, now: datetime, policy: ScoringPolicy
) -> ParameterStatus:
    reading = getattr(readings, parameter)
    if reading is None:
        return "missing"
    if reading.stale:  # fusion already judged it too old for this parameter
        return "stale"
    age_seconds = (now - reading.observed_at).total_seconds()
    return "stale" if age_seconds > policy.max_age_for(parameter) else "scored"


def assess(
    state: PatientStateUpdated,
    now: datetime,
    policy: ScoringPolicy,
    *,
    event_id: UUID,
    source: str,
) -> AssessmentIssued:
    """NEWS2 for one patient state at `now` (timezone-aware). Diastolic BP is not part of NEWS2.

    SpO2 scale 2 applies when the patient's state says so (set by a clinician's Spo2ScaleSet
    event) or the policy forces it; a reading fusion marked stale is never scored.
    """
    readings = state.readings
    status = {p: _status(p, readings, now, policy) for p in NEWS2_PARAMETERS}
    points = dict(_POINTS)
    scale = 2 if state.spo2_scale == 2 or policy.spo2_scale == 2 else 1
    if scale == 2:
        # Scale 2 cannot be read without a current oxygen status: SpO2 inherits its status.
        oxygen = readings.supplemental_oxygen
        on_oxygen = oxygen is not None and oxygen.on_supplemental_oxygen
        points["spo2_percent"] = lambda percent: spo2_scale2_points(percent, on_oxygen)
        if status["spo2_percent"] == "scored":
            status["spo2_percent"] = status["supplemental_oxygen"]
    sub_scores = []
    for parameter in NEWS2_PARAMETERS:
        reading = getattr(readings, parameter)
        value = None if reading is None else _value(reading)
        sub_scores.append(
            SubScore(
                parameter=parameter,
                status=status[parameter],
                points=points[parameter](value) if status[parameter] == "scored" else None,
                value=value,
                unit=_UNITS[parameter],
                observed_at=None if reading is None else reading.observed_at,
            )
        )
    scored = [s.points for s in sub_scores if s.points is not None]
    missing = [p for p in NEWS2_PARAMETERS if status[p] == "missing"]
    stale = [p for p in NEWS2_PARAMETERS if status[p] == "stale"]
    aggregate = sum(scored)
    complete = not missing and not stale
    band: Band | None = band_for(aggregate, any(p == 3 for p in scored))
    if not complete and band == Band.LOW:
        band = None  # a partial low score is only a lower bound: never report it as normal
    return AssessmentIssued(
        event_id=event_id,
        occurred_at=now,
        recorded_at=now,
        source=source,
        patient_id=state.patient_id,
        ward=state.ward,
        spo2_scale=scale,
        aggregate=aggregate,
        band=band,
        complete=complete,
        missing=missing,
        stale=stale,
        sub_scores=sub_scores,
        clinical_response=clinical_response(aggregate, band, complete),
        state_version=state.version,
        cause_recorded_at=state.cause_recorded_at,
    )
