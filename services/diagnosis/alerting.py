"""Alert hygiene, acknowledgement, escalation and the closed loop to critical care (pure).

Diagnosis scores every patient snapshot, but *issues* an assessment only when it says something
new. Per patient it keeps an `AlertStateUpdated`: what it last issued, the open alert, a pending
bed request. `on_assessment` judges a fresh assessment against it; `on_tick` lets time act (an
alert past its response time, an improvement that has held, a band that has been sustained).
No I/O, no clock: the caller passes `now`, the rules and the patient's `Context`.

- Issue at once: the first assessment, a worse band, a change of completeness, of the recommended
  pathways, or of the ceiling of care. A better band is issued only once it has held for the
  rules' `improvement_hold_minutes` (hysteresis in time): a patient oscillating around a threshold
  is issued when they get worse, not on every wobble. The same band again is not issued.
- A band with `respond_within_minutes` (medium, high) opens an alert; a worse alerting band opens
  a new one. An acknowledgement in the care plan closes its acknowledgement; an alert still
  unacknowledged at `respond_by` escalates once (`AlertEscalated`). Falling to a band without a
  response time closes the alert. An incomplete assessment without a band changes neither the
  alert nor a bed request: missing data is not an improvement.
- Bed requests: a patient in a general ward whose issued band has reached a rule's band for its
  `sustained_minutes` gets one `CriticalCareBedRequested` (ICU before HDU), capped by the ceiling
  of care; it is withdrawn when no rule holds any more, the ceiling forbids it, the patient left
  the general ward or was discharged, and superseded when the level changes.

Every derived event id is a uuid5 of its cause, so a redelivered snapshot yields identical events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from schemas.assessments import (
    AlertEscalated,
    AlertStateUpdated,
    AssessmentIssued,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
    CriticalCareLevel,
    EmissionReason,
    OpenAlert,
    PendingBedRequest,
    WithdrawalReason,
)
from schemas.base import Event
from schemas.care import CarePlan
from schemas.vocabulary import Band, LevelOfCare
from services.diagnosis.pathways import recommend
from services.diagnosis.rules import Rules

SOURCE = "wardflow-diagnosis"
RANK: dict[Band | None, int] = {
    None: -1,
    Band.LOW: 0,
    Band.LOW_MEDIUM: 1,
    Band.MEDIUM: 2,
    Band.HIGH: 3,
}


@dataclass(frozen=True)
class Context:
    """What the patient's latest state says beyond the scores."""

    care: CarePlan
    ward: str | None
    ward_level: LevelOfCare | None
    discharged: bool = False


@dataclass(frozen=True)
class Acknowledged:
    """An alert was acknowledged: its band and how long it took (for the metrics)."""

    band: Band
    seconds: float


@dataclass(frozen=True)
class Decision:
    """The patient's alert state afterwards, what to publish, and the improvement on hold."""

    state: AlertStateUpdated
    changed: bool
    outputs: tuple[Event, ...]
    pending: AssessmentIssued | None
    acknowledged: Acknowledged | None = None
    escalated: Band | None = None


def blank(patient_id: str, now: datetime) -> AlertStateUpdated:
    """The state of a patient diagnosis has not issued anything for yet (version 0)."""
    return AlertStateUpdated(
        event_id=derived_id(patient_id, "alert-state", "0"),
        occurred_at=now,
        recorded_at=now,
        source=SOURCE,
        patient_id=patient_id,
        version=0,
    )


def derived_id(*parts: object) -> UUID:
    return uuid5(NAMESPACE_URL, "wardflow:diagnosis:" + ":".join(str(p) for p in parts))


def on_assessment(
    previous: AlertStateUpdated | None,
    pending: AssessmentIssued | None,
    assessment: AssessmentIssued,
    context: Context,
    now: datetime,
    rules: Rules,
) -> Decision:
    """Judge a fresh assessment: issue it, hold it (an improvement), or let it pass silently."""
    before = previous or blank(assessment.patient_id, now)
    state, acknowledged = _acknowledge(before, context.care)
    recommendations = recommend(assessment, context.care, rules, frozenset(state.pathways))
    pathways = [r.pathway for r in recommendations]
    if recommendations or state.pathways:  # most snapshots have none: skip the copy
        assessment = assessment.model_copy(
            update={
                "recommendations": recommendations,
                "recommendations_withdrawn": sorted(set(state.pathways) - set(pathways)),
            }
        )
    hold = timedelta(minutes=rules.alerting.improvement_hold_minutes)
    reason = _reason_to_issue(state, assessment, pathways, context.care)
    outputs: list[Event] = []
    if reason is None and RANK[assessment.band] < RANK[state.band]:
        since = state.improving_since or now
        if now - since < hold:  # an improvement must hold before it is issued
            state = state.model_copy(update={"improving_since": since})
            state = _with_bed_request(state, context, now, rules, assessment, outputs)
            return _decide(before, state, outputs, assessment, acknowledged)
        reason = "improvement_held"
    if reason is None:  # says nothing new: an improvement that did not hold is forgotten
        if state.improving_since is not None:
            state = state.model_copy(update={"improving_since": None})
        state = _with_bed_request(state, context, now, rules, None, outputs)
        return _decide(before, state, outputs, None, acknowledged)
    state = _issue(state, assessment, reason, context, now, rules, outputs)
    state = _with_bed_request(state, context, now, rules, assessment, outputs)
    return _decide(before, state, outputs, None, acknowledged)


def on_tick(
    before: AlertStateUpdated,
    pending: AssessmentIssued | None,
    context: Context | None,
    now: datetime,
    rules: Rules,
) -> Decision:
    """Let time act: escalate an overdue alert, issue an improvement that has held, and request
    a bed for a band sustained long enough (only with a known context)."""
    state, outputs = before, list[Event]()
    escalated = None
    alert = state.alert
    if (
        alert is not None
        and alert.acknowledged_at is None
        and alert.escalated_at is None
        and now >= alert.respond_by
    ):
        outputs.append(_escalation(state, alert, rules, now))
        state = state.model_copy(update={"alert": alert.model_copy(update={"escalated_at": now})})
        escalated = alert.band
    hold = timedelta(minutes=rules.alerting.improvement_hold_minutes)
    if context is None:  # restored, no snapshot since: only the alert can be judged
        decision = _decide(before, state, outputs, pending, None)
        return Decision(
            decision.state, decision.changed, decision.outputs, pending, None, escalated
        )
    improving = state.improving_since
    if pending is not None and improving is not None and now - improving >= hold:
        state = _issue(state, pending, "improvement_held", context, now, rules, outputs)
        pending = None
    state = _with_bed_request(state, context, now, rules, None, outputs)
    decision = _decide(before, state, outputs, pending, None)
    return Decision(decision.state, decision.changed, decision.outputs, pending, None, escalated)


def _decide(
    before: AlertStateUpdated,
    state: AlertStateUpdated,
    outputs: list[Event],
    pending: AssessmentIssued | None,
    acknowledged: Acknowledged | None,
) -> Decision:
    if state is before or state == before:
        return Decision(before, False, tuple(outputs), pending, acknowledged)
    version = before.version + 1
    stamped = state.model_copy(
        update={
            "version": version,
            "event_id": derived_id(state.patient_id, "alert-state", version),
            "occurred_at": state.issued_at or before.occurred_at,
            "recorded_at": state.issued_at or before.recorded_at,
        }
    )
    return Decision(stamped, True, tuple(outputs), pending, acknowledged)


def _reason_to_issue(
    state: AlertStateUpdated,
    assessment: AssessmentIssued,
    pathways: list[str],
    care: CarePlan,
) -> EmissionReason | None:
    if state.assessment_id is None:
        return "first"
    if assessment.complete != state.complete:
        return "completeness"
    if RANK[assessment.band] > RANK[state.band]:
        return "band"
    if pathways != state.pathways:
        return "recommendations"
    if care.ceiling != state.ceiling:
        return "care_plan"
    return None


def _acknowledge(
    state: AlertStateUpdated, care: CarePlan
) -> tuple[AlertStateUpdated, Acknowledged | None]:
    ack, alert = care.acknowledgement, state.alert
    if ack is None or alert is None or alert.acknowledged_at is not None:
        return state, None
    if ack.assessment_id is not None:
        matches = ack.assessment_id == alert.assessment_id
    else:
        matches = ack.acknowledged_at >= alert.raised_at
    if not matches:
        return state, None
    acknowledged = alert.model_copy(
        update={
            "acknowledged_at": ack.acknowledged_at,
            "acknowledged_by_role": ack.acknowledged_by_role,
        }
    )
    seconds = max(0.0, (ack.acknowledged_at - alert.raised_at).total_seconds())
    return state.model_copy(update={"alert": acknowledged}), Acknowledged(alert.band, seconds)


def _issue(
    state: AlertStateUpdated,
    assessment: AssessmentIssued,
    reason: EmissionReason,
    context: Context,
    now: datetime,
    rules: Rules,
    outputs: list[Event],
) -> AlertStateUpdated:
    """Publish `assessment` and move the state to it (its band, alert and band timers)."""
    outputs.append(assessment.model_copy(update={"emitted_because": reason}))
    band = assessment.band
    update: dict[str, Any] = {
        "ward": assessment.ward,
        "assessment_id": assessment.event_id,
        "band": band,
        "aggregate": assessment.aggregate,
        "complete": assessment.complete,
        "pathways": [r.pathway for r in assessment.recommendations],
        "ceiling": context.care.ceiling,
        "issued_at": now,
        "improving_since": None,
    }
    if band is not None:  # an incomplete score without a band leaves alert and timers alone
        alerting = RANK[band] >= RANK[Band.MEDIUM]
        update["alerting_since"] = (state.alerting_since or now) if alerting else None
        update["high_since"] = (state.high_since or now) if band == Band.HIGH else None
        minutes = rules.responses.for_band(band, assessment.aggregate).respond_within_minutes
        if minutes is None:
            update["alert"] = None
        elif state.alert is None or RANK[band] > RANK[state.alert.band]:
            update["alert"] = OpenAlert(
                assessment_id=assessment.event_id,
                band=band,
                raised_at=now,
                respond_by=now + timedelta(minutes=minutes),
            )
    return state.model_copy(update=update)


def _escalation(
    state: AlertStateUpdated, alert: OpenAlert, rules: Rules, now: datetime
) -> AlertEscalated:
    response = rules.responses.for_band(alert.band, state.aggregate or 0)
    return AlertEscalated(
        event_id=derived_id(alert.assessment_id, "escalation"),
        occurred_at=now,
        recorded_at=now,
        source=SOURCE,
        patient_id=state.patient_id,
        ward=state.ward,
        assessment_id=alert.assessment_id,
        band=alert.band,
        raised_at=alert.raised_at,
        respond_by=alert.respond_by,
        escalate_to=response.escalate_to or "medical team",
        rules_version=rules.version,
    )


def wanted_level(
    state: AlertStateUpdated, context: Context, now: datetime, rules: Rules
) -> tuple[CriticalCareLevel | None, WithdrawalReason, str | None]:
    """The critical-care level the rules ask for now (None: none, with the reason), and the
    rule that fired, in words."""
    if context.discharged:
        return None, "discharged", None
    if context.ward_level != LevelOfCare.GENERAL:
        return None, "left_general_ward", None
    fired: list[tuple[CriticalCareLevel, str]] = []
    for rule in rules.bed_requests:
        since = state.high_since if rule.band == Band.HIGH else state.alerting_since
        if since is not None and now - since >= timedelta(minutes=rule.sustained_minutes):
            held = f" sustained {rule.sustained_minutes:g} min" if rule.sustained_minutes else ""
            fired.append((rule.level_of_care, f"rule: NEWS2 {rule.band.value} band{held}"))
    if not fired:
        return None, "improved", None
    level, why = next((f for f in fired if f[0] == "icu"), fired[0])
    if context.care.ceiling == "general":
        return None, "ceiling_of_care", None
    if context.care.ceiling == "hdu" and level == "icu":
        return "hdu", "ceiling_of_care", f"{why}; ICU capped to HDU by the ceiling of care"
    return level, "improved", why


def _with_bed_request(
    state: AlertStateUpdated,
    context: Context,
    now: datetime,
    rules: Rules,
    assessment: AssessmentIssued | None,
    outputs: list[Event],
) -> AlertStateUpdated:
    if state.band is None and state.bed_request is not None:
        return state  # undecidable data neither asks nor withdraws
    level, reason, why = wanted_level(state, context, now, rules)
    pending = state.bed_request
    if pending is not None and (level is None or level != pending.level_of_care):
        outputs.append(
            CriticalCareBedRequestWithdrawn(
                event_id=derived_id(pending.request_id, "withdrawn"),
                occurred_at=now,
                recorded_at=now,
                source=SOURCE,
                patient_id=state.patient_id,
                ward=context.ward,
                request_id=pending.request_id,
                reason="superseded" if level is not None else reason,
            )
        )
        state = state.model_copy(update={"bed_request": None})
    if level is None or state.bed_request is not None or context.ward is None:
        return state
    if state.assessment_id is None or state.band is None:
        return state
    request_id = derived_id(state.patient_id, state.assessment_id, "bed-request", level)
    outputs.append(
        CriticalCareBedRequested(
            event_id=request_id,
            occurred_at=now,
            recorded_at=now,
            source=SOURCE,
            patient_id=state.patient_id,
            ward=context.ward,
            level_of_care=level,
            band=state.band,
            aggregate=state.aggregate or 0,
            assessment_id=state.assessment_id,
            reasons=[why or "", *_scored_reasons(assessment)],
            rules_version=rules.version,
        )
    )
    request = PendingBedRequest(
        request_id=request_id, level_of_care=level, ward=context.ward, requested_at=now
    )
    return state.model_copy(update={"bed_request": request})


def _scored_reasons(assessment: AssessmentIssued | None) -> list[str]:
    """The parameters that scored, in words ("respiratory_rate_per_min 26 /min: 3 points")."""
    if assessment is None:
        return []
    return [
        f"{s.parameter} {s.value}{' ' + s.unit if s.unit else ''}: {s.points} points"
        for s in assessment.sub_scores
        if s.points
    ]
