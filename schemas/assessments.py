"""Assessments context: early-warning scores with their explanation (patients.assessments)."""

from __future__ import annotations

from typing import Literal

from schemas.base import Contract, Event, Identifier, UtcDatetime
from schemas.vocabulary import Band

ParameterStatus = Literal["scored", "missing", "stale"]


class SubScore(Contract):
    """One parameter's contribution: the value it came from and the points it scored."""

    parameter: str
    status: ParameterStatus
    points: int | None = None
    value: float | str | bool | None = None
    unit: str | None = None
    observed_at: UtcDatetime | None = None


class ScoreSummary(Contract):
    """A second score beside NEWS2 (qSOFA, SIRS, shock index) and the criteria it rests on.

    `positive` is None when some criteria could not be judged (missing or stale data) and those
    already known do not reach the threshold: such a score is never reported as negative.
    """

    points: int
    positive: bool | None
    complete: bool
    criteria: dict[str, bool | None]
    value: float | None = None


class AssessmentIssued(Event):
    """A NEWS2 assessment of one patient.

    When `complete` is false, some parameters were missing or stale: `aggregate` is then only a
    lower bound, and `band` is set only if even that lower bound is already above low (so it never
    reads as a normal score).
    """

    kind: Literal["AssessmentIssued"] = "AssessmentIssued"
    patient_id: Identifier
    ward: Identifier | None = None
    score_name: Literal["NEWS2"] = "NEWS2"
    spo2_scale: Literal[1, 2] = 1
    aggregate: int
    band: Band | None
    complete: bool
    missing: list[str] = []
    stale: list[str] = []
    sub_scores: list[SubScore]
    clinical_response: str
    qsofa: ScoreSummary | None = None
    sirs: ScoreSummary | None = None
    shock_index: ScoreSummary | None = None
    state_version: int
    cause_recorded_at: UtcDatetime
