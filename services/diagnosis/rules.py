"""The reviewed rules file: NEWS2 chart, responses, alerting, bed requests, treatment pathways.

`load_rules` reads TOML (the built-in `rules.toml` when no path is given) and validates it with
pydantic before the service starts: every error names the entry (`news2.heart_rate_bpm.rows`) and
why. Pure data and validation; the scoring and alerting code takes a `Rules` value.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.assessments import CriticalCareLevel
from schemas.vocabulary import Band
from services.common.reviewed import load_reviewed, validated

Points = Annotated[int, Field(ge=0, le=3)]
Text = Annotated[str, Field(min_length=1, max_length=500)]
Trigger = Literal["qsofa", "sirs", "news2_medium"]


class RulesError(ValueError):
    """The rules file is invalid; the message lists every entry at fault."""


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChartRow(Strict):
    """Rows of [upper bound, points], strictly ascending bounds; `above` past the last row."""

    rows: Annotated[list[tuple[float, Points]], Field(min_length=1)]
    above: Points

    @model_validator(mode="after")
    def _ascending(self) -> ChartRow:
        bounds = [upper for upper, _ in self.rows]
        if any(b >= a for b, a in pairwise(bounds)):
            raise ValueError("row upper bounds must be strictly ascending")
        return self

    def points(self, value: float) -> int:
        for upper, points in self.rows:
            if value <= upper:
                return points
        return self.above


class Scale2Chart(ChartRow):
    on_air_scores_zero_above: float


class ChartPoints(Strict):
    supplemental_oxygen: Points
    not_alert: Points


class Bands(Strict):
    medium_from: Annotated[int, Field(ge=1)]
    high_from: Annotated[int, Field(ge=1)]
    single_parameter_red: Points

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.high_from <= self.medium_from:
            raise ValueError("high_from must be above medium_from")
        return self


class News2Chart(Strict):
    respiratory_rate_per_min: ChartRow
    spo2_scale1_percent: ChartRow
    spo2_scale2_percent: Scale2Chart
    systolic_bp_mmhg: ChartRow
    heart_rate_bpm: ChartRow
    temperature_celsius: ChartRow
    points: ChartPoints
    bands: Bands


class Response(Strict):
    clinical_response: Text
    monitoring_frequency: Text
    respond_within_minutes: Annotated[float, Field(gt=0, le=1440)] | None = None
    escalate_to: Text | None = None

    @model_validator(mode="after")
    def _escalation_complete(self) -> Response:
        if (self.respond_within_minutes is None) != (self.escalate_to is None):
            raise ValueError("respond_within_minutes and escalate_to go together")
        return self


class Responses(Strict):
    routine: Response
    low: Response
    low_medium: Response
    medium: Response
    high: Response

    def for_band(self, band: Band, aggregate: int) -> Response:
        if band == Band.LOW:
            return self.routine if aggregate == 0 else self.low
        return {Band.LOW_MEDIUM: self.low_medium, Band.MEDIUM: self.medium, Band.HIGH: self.high}[
            band
        ]


class Alerting(Strict):
    improvement_hold_minutes: Annotated[float, Field(ge=0, le=1440)]


class BedRequestRule(Strict):
    band: Literal[Band.MEDIUM, Band.HIGH]
    sustained_minutes: Annotated[float, Field(ge=0, le=1440)]
    level_of_care: CriticalCareLevel


class Action(Strict):
    action: Text
    source: Text


class Pathway(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9\-]*$", max_length=64)]
    title: Text
    requires_suspected_infection: bool
    when_any: Annotated[list[Trigger], Field(min_length=1)]
    actions: Annotated[list[Action], Field(min_length=1)]


class Rules(Strict):
    version: Annotated[str, Field(min_length=1, max_length=64)]
    reference: Text
    news2: News2Chart
    responses: Responses
    alerting: Alerting
    bed_requests: list[BedRequestRule] = []
    pathways: list[Pathway] = []

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        for band in (Band.MEDIUM, Band.HIGH):
            if getattr(self.responses, band.value).respond_within_minutes is None:
                raise ValueError(f"responses.{band.value}: needs respond_within_minutes")
        ids = [p.id for p in self.pathways]
        if len(set(ids)) != len(ids):
            raise ValueError("pathways: ids repeat")
        return self


def rules_from_dict(data: dict[str, object], origin: str = "rules") -> Rules:
    return validated(Rules, data, origin, RulesError)


def load_rules(path: str = "") -> Rules:
    """The rules from a TOML file, or the built-in reviewed rules when `path` is empty."""
    return load_reviewed(
        Rules, path, package="services.diagnosis", built_in="rules.toml", error=RulesError
    )


DEFAULT_RULES = load_rules()
