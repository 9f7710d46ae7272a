"""Assessments context: early-warning scores with their explanation (patients.assessments)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from schemas.base import Contract, Event, Identifier, UtcDatetime
from schemas.vocabulary import Band

ParameterStatus = Literal["scored", "missing", "stale"]
CriticalCareLevel = Literal["hdu", "icu"]


class OverrideApplied(Contract):
    """A clinician's patient-specific range made this reading score 0 (who, until when)."""

    low: float
    high: float
    expires_at: UtcDatetime
    set_by_role: str


class SubScore(Contract):
    """One parameter's contribution: the value it came from and the points it scored."""

    parameter: str
    status: ParameterStatus
    points: int | None = None
    value: float | str | bool | None = None
    unit: str | None = None
    observed_at: UtcDatetime | None = None
    override: OverrideApplied | None = None


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


class RecommendedAction(Contract):
    """One item of a pathway (e.g. "take blood cultures") and the guideline it comes from."""

    action: str
    source: str


class Recommendation(Contract):
    """A treatment pathway recommended now, why, and its items (from the reviewed rules)."""

    pathway: str
    title: str
    reason: str
    actions: list[RecommendedAction]


EmissionReason = Literal[
    "first", "band", "completeness", "recommendations", "care_plan", "improvement_held"
]


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
    monitoring_frequency: str | None = None
    respond_within_minutes: float | None = None
    rules_version: str | None = None
    recommendations: list[Recommendation] = []
    recommendations_withdrawn: list[str] = []
    emitted_because: EmissionReason | None = None
    qsofa: ScoreSummary | None = None
    sirs: ScoreSummary | None = None
    shock_index: ScoreSummary | None = None
    state_version: int
    cause_recorded_at: UtcDatetime


class AlertEscalated(Event):
    """A medium or high alert was not acknowledged within the rules' response time."""

    kind: Literal["AlertEscalated"] = "AlertEscalated"
    patient_id: Identifier
    ward: Identifier | None = None
    assessment_id: UUID
    band: Band
    raised_at: UtcDatetime
    respond_by: UtcDatetime
    escalate_to: str
    rules_version: str


class CriticalCareBedRequested(Event):
    """Diagnosis asks the scheduler for an HDU/ICU bed for a deteriorating ward patient.

    `event_id` is the request's id; `reasons` say which rule fired and which parameters scored.
    """

    kind: Literal["CriticalCareBedRequested"] = "CriticalCareBedRequested"
    patient_id: Identifier
    ward: Identifier
    level_of_care: CriticalCareLevel
    band: Band
    aggregate: int
    assessment_id: UUID
    reasons: list[str]
    rules_version: str


WithdrawalReason = Literal[
    "improved", "ceiling_of_care", "left_general_ward", "discharged", "superseded"
]


class CriticalCareBedRequestWithdrawn(Event):
    """A pending HDU/ICU bed request is no longer needed, and why."""

    kind: Literal["CriticalCareBedRequestWithdrawn"] = "CriticalCareBedRequestWithdrawn"
    patient_id: Identifier
    ward: Identifier | None = None
    request_id: UUID
    reason: WithdrawalReason


class OpenAlert(Contract):
    """A medium or high alert: raised by an assessment, until the band falls below medium."""

    assessment_id: UUID
    band: Band
    raised_at: UtcDatetime
    respond_by: UtcDatetime
    acknowledged_at: UtcDatetime | None = None
    acknowledged_by_role: str | None = None
    escalated_at: UtcDatetime | None = None


class PendingBedRequest(Contract):
    request_id: UUID
    level_of_care: CriticalCareLevel
    ward: Identifier
    requested_at: UtcDatetime


class AlertStateUpdated(Event):
    """Diagnosis's view of one patient after a change: the last assessment it issued, the open
    alert, a pending bed request (patients.alerts, compacted). Dashboards list unacknowledged
    alerts from it; diagnosis restores itself from it after a restart."""

    kind: Literal["AlertStateUpdated"] = "AlertStateUpdated"
    patient_id: Identifier
    ward: Identifier | None = None
    version: int
    assessment_id: UUID | None = None
    band: Band | None = None
    aggregate: int | None = None
    complete: bool = False
    pathways: list[str] = []
    ceiling: str = "icu"
    issued_at: UtcDatetime | None = None
    improving_since: UtcDatetime | None = None
    alerting_since: UtcDatetime | None = None
    high_since: UtcDatetime | None = None
    alert: OpenAlert | None = None
    bed_request: PendingBedRequest | None = None
