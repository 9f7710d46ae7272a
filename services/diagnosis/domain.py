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

from schemas.assessments import AssessmentIssued, OverrideApplied, ParameterStatus, SubScore
from schemas.care import CarePlan, ParameterOverride
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Band, Consciousness
from services.diagnosis.rules import DEFAULT_RULES, ChartRow, Rules

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
CEILING_NOTES = {
    "general": "Ceiling of care: ward-based care only (set by {role}); no HDU/ICU bed is requested",
    "hdu": "Ceiling of care: not for ICU (set by {role}); an HDU bed at most is requested",
}


def _default_max_ages() -> dict[str, float]:
    return dict.fromkeys(NEWS2_PARAMETERS, DEFAULT_MAX_AGE_SECONDS)


@dataclass(frozen=True)
class ScoringPolicy:
    """The reviewed rules, how old a reading may be and still count, and a forced SpO2 scale."""

    max_age_seconds: dict[str, float] = field(default_factory=_default_max_ages)
    spo2_scale: int = 1
    rules: Rules = DEFAULT_RULES

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
    for upper, points in rows:
        if value <= upper:
            return points
    return above


class Chart:
    """The NEWS2 chart of a rules file as scoring functions, one per parameter (rows copied to
    plain tuples once: scoring runs per snapshot)."""

    def __init__(self, rules: Rules) -> None:
        news2 = self.news2 = rules.news2

        def table(row: ChartRow) -> tuple[tuple[tuple[float, int], ...], int]:
            return tuple((float(upper), points) for upper, points in row.rows), row.above

        self._respiration = table(news2.respiratory_rate_per_min)
        self._spo2_scale1 = table(news2.spo2_scale1_percent)
        self._spo2_scale2 = table(news2.spo2_scale2_percent)
        self._on_air_zero_above = news2.spo2_scale2_percent.on_air_scores_zero_above
        self._systolic = table(news2.systolic_bp_mmhg)
        self._pulse = table(news2.heart_rate_bpm)
        self._temperature = table(news2.temperature_celsius)
        self._oxygen = news2.points.supplemental_oxygen
        self._not_alert = news2.points.not_alert
        self._points: dict[str, Callable[[Any], int]] = {
            "respiratory_rate_per_min": self.respiration_points,
            "spo2_percent": self.spo2_scale1_points,
            "supplemental_oxygen": self.oxygen_points,
            "systolic_bp_mmhg": self.systolic_points,
            "heart_rate_bpm": self.pulse_points,
            "consciousness": lambda level: self.consciousness_points(Consciousness(level)),
            "temperature_celsius": self.temperature_points,
        }

    def respiration_points(self, rate: float) -> int:
        return _lookup(rate, *self._respiration)

    def spo2_scale1_points(self, percent: float) -> int:
        return _lookup(percent, *self._spo2_scale1)

    def spo2_scale2_points(self, percent: float, on_oxygen: bool) -> int:
        if not on_oxygen and percent > self._on_air_zero_above:
            return 0
        return _lookup(percent, *self._spo2_scale2)

    def oxygen_points(self, on_oxygen: bool) -> int:
        return self._oxygen if on_oxygen else 0

    def systolic_points(self, mmhg: float) -> int:
        return _lookup(mmhg, *self._systolic)

    def pulse_points(self, bpm: float) -> int:
        return _lookup(bpm, *self._pulse)

    def consciousness_points(self, level: Consciousness) -> int:
        return 0 if level == Consciousness.ALERT else self._not_alert

    def temperature_points(self, celsius: float) -> int:
        return _lookup(celsius, *self._temperature)

    def band_for(self, aggregate: int, any_single_red: bool) -> Band:
        bands = self.news2.bands
        if aggregate >= bands.high_from:
            return Band.HIGH
        if aggregate >= bands.medium_from:
            return Band.MEDIUM
        return Band.LOW_MEDIUM if any_single_red else Band.LOW

    def points_by_parameter(self) -> dict[str, Callable[[Any], int]]:
        """Parameter -> scoring function (a fresh dict: scale 2 replaces the SpO2 entry)."""
        return dict(self._points)


_CHARTS: dict[int, Chart] = {}


def chart_for(rules: Rules) -> Chart:
    """One `Chart` per rules object (rules are immutable; built once, reused per assessment)."""
    chart = _CHARTS.get(id(rules))
    if chart is None or chart.news2 is not rules.news2:
        chart = _CHARTS[id(rules)] = Chart(rules)
    return chart


DEFAULT_CHART = chart_for(DEFAULT_RULES)
respiration_points = DEFAULT_CHART.respiration_points
spo2_scale1_points = DEFAULT_CHART.spo2_scale1_points
spo2_scale2_points = DEFAULT_CHART.spo2_scale2_points
oxygen_points = DEFAULT_CHART.oxygen_points
systolic_points = DEFAULT_CHART.systolic_points
pulse_points = DEFAULT_CHART.pulse_points
consciousness_points = DEFAULT_CHART.consciousness_points
temperature_points = DEFAULT_CHART.temperature_points
band_for = DEFAULT_CHART.band_for


def clinical_response(
    aggregate: int, band: Band | None, complete: bool, rules: Rules = DEFAULT_RULES
) -> str:
    """The rules' response for a band; an incomplete score always says so first."""
    if band is None:
        return INCOMPLETE_PREFIX.rstrip()
    response = rules.responses.for_band(band, aggregate).clinical_response
    return response if complete else INCOMPLETE_PREFIX + response


_UNITS: dict[str, str | None] = {
    "respiratory_rate_per_min": "/min",
    "spo2_percent": "%",
    "supplemental_oxygen": None,
    "systolic_bp_mmhg": "mmHg",
    "heart_rate_bpm": "bpm",
    "consciousness": None,
    "temperature_celsius": "Cel",
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


def active_override(
    care: CarePlan, parameter: str, value: float | str | bool | None, now: datetime
) -> ParameterOverride | None:
    """The clinician's override in force whose range covers this reading (it then scores 0)."""
    if not care.overrides or not isinstance(value, float | int) or isinstance(value, bool):
        return None
    for override in care.overrides:
        if override.parameter == parameter and now < override.expires_at:
            return override if override.low <= value <= override.high else None
    return None


def ceiling_note(care: CarePlan, band: Band | None) -> str | None:
    """Why no (or a lesser) critical-care bed is asked for, when a ceiling of care applies."""
    if band not in (Band.MEDIUM, Band.HIGH) or care.ceiling == "icu":
        return None
    return CEILING_NOTES[care.ceiling].format(role=care.ceiling_set_by_role or "a clinician")


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
    event) or the policy forces it; a reading fusion marked stale is never scored. A clinician's
    parameter override in force scores a reading inside its range 0, and says so.
    """
    readings = state.readings
    rules = policy.rules
    chart = chart_for(rules)
    status = {p: _status(p, readings, now, policy) for p in NEWS2_PARAMETERS}
    points = chart.points_by_parameter()
    scale = 2 if state.spo2_scale == 2 or policy.spo2_scale == 2 else 1
    if scale == 2:
        # Scale 2 cannot be read without a current oxygen status: SpO2 inherits its status.
        oxygen = readings.supplemental_oxygen
        on_oxygen = oxygen is not None and oxygen.on_supplemental_oxygen
        points["spo2_percent"] = lambda percent: chart.spo2_scale2_points(percent, on_oxygen)
        if status["spo2_percent"] == "scored":
            status["spo2_percent"] = status["supplemental_oxygen"]
    sub_scores = []
    for parameter in NEWS2_PARAMETERS:
        reading = getattr(readings, parameter)
        value = None if reading is None else _value(reading)
        scored = status[parameter] == "scored"
        override = active_override(state.care, parameter, value, now) if scored else None
        sub_scores.append(
            SubScore(
                parameter=parameter,
                status=status[parameter],
                points=(0 if override else points[parameter](value)) if scored else None,
                value=value,
                unit=_UNITS[parameter],
                observed_at=None if reading is None else reading.observed_at,
                override=None
                if override is None
                else OverrideApplied(
                    low=override.low,
                    high=override.high,
                    expires_at=override.expires_at,
                    set_by_role=override.set_by_role,
                ),
            )
        )
    scored_points = [s.points for s in sub_scores if s.points is not None]
    missing = [p for p in NEWS2_PARAMETERS if status[p] == "missing"]
    stale = [p for p in NEWS2_PARAMETERS if status[p] == "stale"]
    aggregate = sum(scored_points)
    complete = not missing and not stale
    red = rules.news2.bands.single_parameter_red
    band: Band | None = chart.band_for(aggregate, any(p >= red for p in scored_points))
    if not complete and band == Band.LOW:
        band = None  # a partial low score is only a lower bound: never report it as normal
    response = None if band is None else rules.responses.for_band(band, aggregate)
    text = clinical_response(aggregate, band, complete, rules)
    note = ceiling_note(state.care, band)
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
        clinical_response=text if note is None else f"{text}. {note}",
        monitoring_frequency=None if response is None else response.monitoring_frequency,
        respond_within_minutes=None if response is None else response.respond_within_minutes,
        rules_version=rules.version,
        recommendations=[],  # given, not defaulted: pydantic deep-copies mutable defaults
        recommendations_withdrawn=[],
        state_version=state.version,
        cause_recorded_at=state.cause_recorded_at,
    )
