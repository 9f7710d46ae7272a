"""`wardflow score`: one set of observations in, NEWS2, qSOFA and SIRS out, for people at a desk.

Pure: the observations arrive as a dict (parsed JSON) and `now` is passed in; every observation is
taken as made at `now`. A field that is absent is missing, never normal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import Field, StrictBool

from schemas.base import Contract
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Consciousness
from services.diagnosis.domain import NEWS2_PARAMETERS, ScoringPolicy, assess
from services.diagnosis.scores import ScoreResult, qsofa, sirs

CALCULATOR = "wardflow-score"
NO_ID = UUID(int=0)


class Observations(Contract):
    """The calculator's input; units are in the field names or fixed (breaths/min, beats/min)."""

    model_config = Contract.model_config | {"extra": "forbid"}

    respiration_rate: float | None = Field(default=None, ge=0, le=100)
    spo2_percent: float | None = Field(default=None, ge=0, le=100)
    spo2_scale: Literal[1, 2] = 1
    on_oxygen: StrictBool | None = None
    systolic_bp: float | None = Field(default=None, ge=0, le=350)
    pulse: float | None = Field(default=None, ge=0, le=300)
    consciousness: Consciousness | None = None
    temperature_celsius: float | None = Field(default=None, ge=25, le=45)
    gcs: int | None = Field(default=None, ge=3, le=15)
    wbc: float | None = Field(default=None, ge=0, le=500)
    paco2_mmhg: float | None = Field(default=None, ge=0, le=200)


def readings_of(observations: Observations, now: datetime) -> PatientReadings:
    def number(value: float | None) -> NumericReading | None:
        return (
            None
            if value is None
            else NumericReading(value=value, observed_at=now, source=CALCULATOR)
        )

    oxygen = observations.on_oxygen
    level = observations.consciousness
    return PatientReadings(
        respiratory_rate_per_min=number(observations.respiration_rate),
        spo2_percent=number(observations.spo2_percent),
        systolic_bp_mmhg=number(observations.systolic_bp),
        heart_rate_bpm=number(observations.pulse),
        temperature_celsius=number(observations.temperature_celsius),
        supplemental_oxygen=None
        if oxygen is None
        else OxygenReading(on_supplemental_oxygen=oxygen, observed_at=now, source=CALCULATOR),
        consciousness=None
        if level is None
        else ConsciousnessReading(level=level, observed_at=now, source=CALCULATOR),
    )


def score(observations: Observations, now: datetime) -> dict[str, Any]:
    """NEWS2 (with sub-scores, band, completeness and response), qSOFA and SIRS."""
    readings = readings_of(observations, now)
    state = PatientStateUpdated(
        event_id=NO_ID,
        occurred_at=now,
        recorded_at=now,
        source=CALCULATOR,
        patient_id="calculator",
        version=0,
        spo2_scale=observations.spo2_scale,
        readings=readings,
        cause_recorded_at=now,
    )
    news2 = assess(state, now, ScoringPolicy(), event_id=NO_ID, source=CALCULATOR)
    ages = dict.fromkeys(NEWS2_PARAMETERS, 3600.0)
    quick = qsofa(readings, now, max_age_seconds=ages, gcs=observations.gcs)
    inflammatory = sirs(
        readings, now, max_age_seconds=ages, wbc_10e9_per_l=observations.wbc,
        paco2_mmhg=observations.paco2_mmhg,
    )  # fmt: skip
    return {
        "news2": {
            "total": news2.aggregate,
            "band": news2.band.value if news2.band else None,
            "complete": news2.complete,
            "missing": news2.missing,
            "spo2_scale": news2.spo2_scale,
            "response": news2.clinical_response,
            "monitoring_frequency": news2.monitoring_frequency,
            "respond_within_minutes": news2.respond_within_minutes,
            "rules_version": news2.rules_version,
            "sub_scores": [
                {"parameter": s.parameter, "status": s.status, "points": s.points, "value": s.value}
                for s in news2.sub_scores
            ],
        },
        "qsofa": _summary(quick, "total"),
        "sirs": _summary(inflammatory, "count"),
    }


def _summary(result: ScoreResult, points_key: str) -> dict[str, Any]:
    return {
        points_key: result.points,
        "positive": result.positive,
        "complete": result.complete,
        "criteria": {c.name: c.met for c in result.criteria},
    }
