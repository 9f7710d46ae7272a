"""Diagnosis service: patients.state -> NEWS2 assessments on patients.assessments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from prometheus_client import Counter

from schemas.patients import PatientStateUpdated
from schemas.topics import PATIENTS_ASSESSMENTS, PATIENTS_STATE, TopicSpec
from services.common import metrics
from services.common.stage import Output, StageRunner
from services.diagnosis.config import DiagnosisSettings
from services.diagnosis.domain import NEWS2_PARAMETERS, ScoringPolicy, assess
from services.diagnosis.scores import with_sepsis_scores

STAGE = "diagnosis"

ASSESSMENTS = Counter(
    "wardflow_assessments_total",
    "Assessments issued, by NEWS2 band ('incomplete' when no band can be given).",
    ["band"],
)


class Diagnoser:
    def __init__(self, settings: DiagnosisSettings) -> None:
        self.policy = ScoringPolicy(
            max_age_seconds={p: settings.max_observation_age_seconds for p in NEWS2_PARAMETERS}
        )

    async def __call__(self, spec: TopicSpec, event: Any) -> Sequence[Output]:
        state: PatientStateUpdated = event
        now = datetime.now(UTC)
        assessment = assess(
            state,
            now,
            self.policy,
            # One assessment per snapshot: redelivery yields the same id.
            event_id=uuid5(NAMESPACE_URL, f"wardflow:assessment:{state.event_id}"),
            source="wardflow-diagnosis",
        )
        assessment = with_sepsis_scores(
            assessment, state.readings, now, self.policy.max_age_seconds
        )
        ASSESSMENTS.labels(assessment.band.value if assessment.band else "incomplete").inc()
        latency = (now - state.cause_recorded_at).total_seconds()
        metrics.END_TO_END_LATENCY_SECONDS.labels(STAGE).observe(max(0.0, latency))
        return [Output(PATIENTS_ASSESSMENTS, assessment)]


def build(settings: DiagnosisSettings) -> StageRunner:
    return StageRunner(STAGE, settings, [PATIENTS_STATE], Diagnoser(settings))
