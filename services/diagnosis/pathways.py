"""Treatment pathways: which of the rules' pathways an assessment triggers, and why (pure).

A pathway is recommended while its triggers hold (qSOFA positive, SIRS positive, NEWS2 medium or
high) and, when the pathway says so, the care plan flags suspected infection. An undecidable
score (incomplete, `positive=None`) never triggers a pathway and never clears one by itself: the
pathway stays until an assessment can judge its trigger again.
"""

from __future__ import annotations

from schemas.assessments import AssessmentIssued, Recommendation, RecommendedAction
from schemas.care import CarePlan
from schemas.vocabulary import Band
from services.diagnosis.rules import Pathway, Rules, Trigger

STILL_RECOMMENDED = "still recommended: its trigger cannot be re-judged on incomplete data"
_TRIGGER_TEXT: dict[Trigger, str] = {
    "qsofa": "qSOFA {points} of 3 (positive at 2)",
    "sirs": "SIRS {points} of 4 criteria (met at 2)",
    "news2_medium": "NEWS2 {points} ({band} band)",
}


def _fired(trigger: Trigger, assessment: AssessmentIssued) -> str | None:
    """The reason text when `trigger` holds for this assessment, else None."""
    if trigger == "news2_medium":
        if assessment.band in (Band.MEDIUM, Band.HIGH):
            return _TRIGGER_TEXT[trigger].format(
                points=assessment.aggregate, band=assessment.band.value
            )
        return None
    score = assessment.qsofa if trigger == "qsofa" else assessment.sirs
    if score is None or score.positive is not True:
        return None
    return _TRIGGER_TEXT[trigger].format(points=score.points)


def _undecidable(trigger: Trigger, assessment: AssessmentIssued) -> bool:
    if trigger == "news2_medium":
        return assessment.band is None
    score = assessment.qsofa if trigger == "qsofa" else assessment.sirs
    return score is None or score.positive is None


def _recommendation(pathway: Pathway, reasons: list[str]) -> Recommendation:
    infection = "suspected infection; " if pathway.requires_suspected_infection else ""
    return Recommendation(
        pathway=pathway.id,
        title=pathway.title,
        reason=infection + "; ".join(reasons),
        actions=[RecommendedAction(action=a.action, source=a.source) for a in pathway.actions],
    )


def recommend(
    assessment: AssessmentIssued,
    care: CarePlan,
    rules: Rules,
    previous: frozenset[str] = frozenset(),
) -> list[Recommendation]:
    """The pathways this assessment triggers, in the rules' order. A pathway in `previous` stays
    while its triggers cannot be judged (missing or stale data)."""
    recommended = []
    for pathway in rules.pathways:
        if pathway.requires_suspected_infection and not care.suspected_infection:
            continue
        reasons = [r for t in pathway.when_any if (r := _fired(t, assessment)) is not None]
        held = pathway.id in previous and any(_undecidable(t, assessment) for t in pathway.when_any)
        if not reasons and held:
            reasons = [STILL_RECOMMENDED]
        if reasons:
            recommended.append(_recommendation(pathway, reasons))
    return recommended
