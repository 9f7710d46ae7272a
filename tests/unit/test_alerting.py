"""Alert hygiene, acknowledgement, escalation and bed requests (pure rules, default rules file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from schemas.assessments import (
    AlertEscalated,
    AlertStateUpdated,
    AssessmentIssued,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
    ScoreSummary,
    SubScore,
)
from schemas.care import Acknowledgement, CarePlan
from schemas.vocabulary import Band, LevelOfCare
from services.diagnosis.alerting import Context, Decision, on_assessment, on_tick
from services.diagnosis.rules import DEFAULT_RULES

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
RULES = DEFAULT_RULES
WARD = Context(care=CarePlan(), ward="WARD-A", ward_level=LevelOfCare.GENERAL)
AGGREGATE = {Band.LOW: 2, Band.LOW_MEDIUM: 3, Band.MEDIUM: 5, Band.HIGH: 8}


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def assessment(
    band: Band | None,
    *,
    complete: bool = True,
    qsofa_positive: bool | None = False,
    sirs_positive: bool | None = False,
    aggregate: int | None = None,
) -> AssessmentIssued:
    total = aggregate if aggregate is not None else AGGREGATE.get(band, 2) if band else 2
    return AssessmentIssued(
        event_id=uuid4(),
        occurred_at=T0,
        recorded_at=T0,
        source="test",
        patient_id="P1",
        ward="WARD-A",
        aggregate=total,
        band=band,
        complete=complete,
        sub_scores=[
            SubScore(parameter="respiratory_rate_per_min", status="scored", points=3, value=26.0),
        ],
        clinical_response="...",
        qsofa=ScoreSummary(
            points=2 if qsofa_positive else 0,
            positive=qsofa_positive,
            complete=qsofa_positive is not None,
            criteria={},
        ),
        sirs=ScoreSummary(
            points=2 if sirs_positive else 0,
            positive=sirs_positive,
            complete=sirs_positive is not None,
            criteria={},
        ),
        state_version=1,
        cause_recorded_at=T0,
    )


class Patient:
    """Drives the pure rules like the service does: one state and one pending per patient."""

    def __init__(self, context: Context = WARD) -> None:
        self.state: AlertStateUpdated | None = None
        self.pending: AssessmentIssued | None = None
        self.context = context
        self.issued: list[AssessmentIssued] = []
        self.events: list[object] = []

    def _take(self, decision: Decision) -> Decision:
        if decision.changed:
            assert self.state is None or decision.state.version == self.state.version + 1
            self.state = decision.state
        self.pending = decision.pending
        self.events.extend(decision.outputs)
        self.issued.extend(o for o in decision.outputs if isinstance(o, AssessmentIssued))
        return decision

    def see(self, band: Band | None, at: float, **kwargs: object) -> Decision:
        fresh = assessment(band, **kwargs)  # type: ignore[arg-type]
        return self._take(
            on_assessment(self.state, self.pending, fresh, self.context, minutes(at), RULES)
        )

    def tick(self, at: float) -> Decision:
        assert self.state is not None
        return self._take(on_tick(self.state, self.pending, self.context, minutes(at), RULES))

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


# --- issuing on change, hysteresis ----------------------------------------------------------


def test_first_assessment_is_issued_and_the_same_band_again_is_not() -> None:
    patient = Patient()
    patient.see(Band.LOW, 0)
    again = patient.see(Band.LOW, 1)
    assert [a.emitted_because for a in patient.issued] == ["first"]
    assert not again.changed and not again.outputs


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (Band.LOW, Band.LOW_MEDIUM),
        (Band.LOW, Band.MEDIUM),
        (Band.LOW_MEDIUM, Band.MEDIUM),
        (Band.MEDIUM, Band.HIGH),
        (Band.LOW, Band.HIGH),
    ],
)
def test_a_worse_band_is_issued_at_once(before: Band, after: Band) -> None:
    patient = Patient()
    patient.see(before, 0)
    patient.see(after, 0.5)
    assert [a.band for a in patient.issued] == [before, after]
    assert patient.issued[-1].emitted_because == "band"


def test_a_better_band_is_issued_only_after_it_held_for_the_hold_time() -> None:
    hold = RULES.alerting.improvement_hold_minutes
    patient = Patient()
    patient.see(Band.MEDIUM, 0)
    patient.see(Band.LOW, 10)
    patient.see(Band.LOW, 10 + hold - 0.1)
    assert [a.band for a in patient.issued] == [Band.MEDIUM], "held, not issued yet"
    patient.see(Band.LOW, 10 + hold)
    assert [a.band for a in patient.issued] == [Band.MEDIUM, Band.LOW]
    assert patient.issued[-1].emitted_because == "improvement_held"


def test_a_held_improvement_is_issued_by_the_tick_without_a_new_snapshot() -> None:
    hold = RULES.alerting.improvement_hold_minutes
    patient = Patient()
    patient.see(Band.HIGH, 0)
    patient.see(Band.LOW, 1)
    patient.tick(1 + hold - 1)
    assert [a.band for a in patient.issued] == [Band.HIGH]
    patient.tick(1 + hold)
    assert [a.band for a in patient.issued] == [Band.HIGH, Band.LOW]


def test_an_improvement_that_does_not_hold_is_forgotten() -> None:
    patient = Patient()
    patient.see(Band.MEDIUM, 0)
    patient.see(Band.LOW, 5)
    patient.see(Band.MEDIUM, 8)  # back to the issued band: nothing new
    patient.see(Band.LOW, 9)  # a new improvement starts its own hold
    patient.see(Band.LOW, 9 + RULES.alerting.improvement_hold_minutes - 1)
    assert [a.band for a in patient.issued] == [Band.MEDIUM]


def test_a_patient_oscillating_around_a_threshold_does_not_flood() -> None:
    patient = Patient()
    for step in range(60):  # every minute for an hour: 4, 5, 4, 5 ...
        patient.see(Band.MEDIUM if step % 2 else Band.LOW, step)
    assert [a.band for a in patient.issued] == [Band.LOW, Band.MEDIUM]


@pytest.mark.parametrize("band", [Band.LOW, Band.MEDIUM])
def test_a_change_of_completeness_is_issued_at_once_either_way(band: Band) -> None:
    patient = Patient()
    patient.see(band, 0)
    patient.see(band, 1, complete=False)
    patient.see(band, 2)
    assert [(a.complete, a.emitted_because) for a in patient.issued] == [
        (True, "first"),
        (False, "completeness"),
        (True, "completeness"),
    ]


def test_redelivered_snapshot_changes_nothing_and_ids_are_deterministic() -> None:
    fresh = assessment(Band.HIGH)
    first = on_assessment(None, None, fresh, WARD, T0, RULES)
    again = on_assessment(None, None, fresh, WARD, T0, RULES)
    assert [e.event_id for e in first.outputs] == [e.event_id for e in again.outputs]
    assert first.state == again.state
    repeat = on_assessment(first.state, None, fresh, WARD, T0, RULES)
    assert not repeat.changed and not repeat.outputs


# --- alerts, acknowledgement, escalation ----------------------------------------------------


@pytest.mark.parametrize(("band", "respond_minutes"), [(Band.MEDIUM, 60), (Band.HIGH, 30)])
def test_medium_and_high_open_an_alert_with_the_rules_response_time(
    band: Band, respond_minutes: int
) -> None:
    patient = Patient()
    patient.see(band, 0)
    assert patient.state is not None and patient.state.alert is not None
    assert patient.state.alert.respond_by == minutes(respond_minutes)


@pytest.mark.parametrize("band", [Band.LOW, Band.LOW_MEDIUM])
def test_bands_without_a_response_time_open_no_alert(band: Band) -> None:
    patient = Patient()
    patient.see(band, 0)
    assert patient.state is not None and patient.state.alert is None


@pytest.mark.parametrize(("band", "respond_minutes"), [(Band.MEDIUM, 60), (Band.HIGH, 30)])
def test_an_unacknowledged_alert_escalates_once_at_its_response_time(
    band: Band, respond_minutes: int
) -> None:
    patient = Patient()
    patient.see(band, 0)
    patient.tick(respond_minutes - 0.1)
    assert not patient.of(AlertEscalated)
    escalation = patient.tick(respond_minutes)
    assert escalation.escalated is band
    patient.tick(respond_minutes + 1)
    (escalated,) = patient.of(AlertEscalated)
    assert escalated.band is band and escalated.assessment_id == patient.issued[0].event_id
    assert escalated.escalate_to == getattr(RULES.responses, band.value).escalate_to
    assert escalated.rules_version == RULES.version


def test_an_acknowledged_alert_does_not_escalate_and_reports_time_to_acknowledge() -> None:
    patient = Patient()
    patient.see(Band.HIGH, 0)
    alert_id = patient.issued[0].event_id
    patient.context = Context(
        care=CarePlan(
            acknowledgement=Acknowledgement(
                assessment_id=alert_id,
                acknowledged_at=minutes(12),
                acknowledged_by_role="registered nurse",
            )
        ),
        ward="WARD-A",
        ward_level=LevelOfCare.GENERAL,
    )
    acknowledged = patient.see(Band.HIGH, 12.5)
    assert acknowledged.acknowledged is not None
    assert acknowledged.acknowledged.seconds == 12 * 60
    assert patient.state is not None and patient.state.alert is not None
    assert patient.state.alert.acknowledged_by_role == "registered nurse"
    patient.tick(45)
    assert not patient.of(AlertEscalated)


def test_an_acknowledgement_of_another_alert_does_not_count() -> None:
    patient = Patient()
    patient.see(Band.HIGH, 0)
    patient.context = Context(
        care=CarePlan(
            acknowledgement=Acknowledgement(
                assessment_id=UUID(int=7), acknowledged_at=minutes(5), acknowledged_by_role="RN"
            )
        ),
        ward="WARD-A",
        ward_level=LevelOfCare.GENERAL,
    )
    assert patient.see(Band.HIGH, 6).acknowledged is None
    patient.tick(30)
    assert len(patient.of(AlertEscalated)) == 1


@pytest.mark.parametrize(("acknowledged_at", "counts"), [(-1, False), (0, True), (3, True)])
def test_an_acknowledgement_without_an_id_counts_for_alerts_raised_before_it(
    acknowledged_at: float, counts: bool
) -> None:
    patient = Patient()
    patient.see(Band.MEDIUM, 0)
    patient.context = Context(
        care=CarePlan(
            acknowledgement=Acknowledgement(
                acknowledged_at=minutes(acknowledged_at), acknowledged_by_role="RN"
            )
        ),
        ward="WARD-A",
        ward_level=LevelOfCare.GENERAL,
    )
    assert (patient.see(Band.MEDIUM, 4).acknowledged is not None) is counts


def test_a_worse_band_opens_a_new_alert_and_falling_to_low_closes_it() -> None:
    patient = Patient()
    patient.see(Band.MEDIUM, 0)
    assert patient.state is not None and patient.state.alert is not None
    medium_alert = patient.state.alert.assessment_id
    patient.see(Band.HIGH, 10)
    assert patient.state.alert is not None
    assert patient.state.alert.assessment_id != medium_alert
    assert patient.state.alert.respond_by == minutes(40)
    patient.see(Band.LOW, 11)
    patient.see(Band.LOW, 11 + RULES.alerting.improvement_hold_minutes)
    assert patient.state.alert is None


def test_missing_data_neither_closes_an_alert_nor_withdraws_a_bed_request() -> None:
    patient = Patient()
    patient.see(Band.HIGH, 0)
    patient.see(None, 1, complete=False)
    assert patient.issued[-1].emitted_because == "completeness"
    assert patient.state is not None and patient.state.alert is not None
    assert patient.state.bed_request is not None
    assert not patient.of(CriticalCareBedRequestWithdrawn)
    patient.tick(30)
    assert len(patient.of(AlertEscalated)) == 1


# --- closed loop to critical care -----------------------------------------------------------


def test_high_band_in_a_general_ward_requests_an_icu_bed_at_once_with_reasons() -> None:
    patient = Patient()
    patient.see(Band.HIGH, 0)
    (request,) = patient.of(CriticalCareBedRequested)
    assert request.level_of_care == "icu" and request.ward == "WARD-A"
    assert request.band is Band.HIGH and request.aggregate == 8
    assert request.assessment_id == patient.issued[0].event_id
    assert request.reasons[0] == "rule: NEWS2 high band"
    assert request.reasons[1:] == ["respiratory_rate_per_min 26.0: 3 points"]


def test_sustained_medium_band_requests_an_hdu_bed_after_the_rules_time() -> None:
    sustained = next(r for r in RULES.bed_requests if r.band == Band.MEDIUM).sustained_minutes
    patient = Patient()
    patient.see(Band.MEDIUM, 0)
    patient.tick(sustained - 1)
    assert not patient.of(CriticalCareBedRequested)
    patient.tick(sustained)
    (request,) = patient.of(CriticalCareBedRequested)
    assert request.level_of_care == "hdu"
    assert request.reasons[0] == f"rule: NEWS2 medium band sustained {sustained:g} min"


def test_improvement_withdraws_a_pending_request() -> None:
    patient = Patient()
    patient.see(Band.HIGH, 0)
    patient.see(Band.LOW, 5)
    assert not patient.of(CriticalCareBedRequestWithdrawn), "not before the improvement held"
    patient.tick(5 + RULES.alerting.improvement_hold_minutes)
    (withdrawn,) = patient.of(CriticalCareBedRequestWithdrawn)
    (request,) = patient.of(CriticalCareBedRequested)
    assert withdrawn.request_id == request.event_id and withdrawn.reason == "improved"
    assert patient.state is not None and patient.state.bed_request is None


@pytest.mark.parametrize(
    ("level", "ward_level"),
    [("HDU", LevelOfCare.HDU), ("ICU", LevelOfCare.ICU), ("ED", LevelOfCare.EMERGENCY)],
)
def test_no_request_outside_a_general_ward(level: str, ward_level: LevelOfCare) -> None:
    patient = Patient(Context(care=CarePlan(), ward=level, ward_level=ward_level))
    patient.see(Band.HIGH, 0)
    patient.tick(120)
    assert not patient.of(CriticalCareBedRequested)


def test_ward_based_ceiling_of_care_never_requests_a_bed() -> None:
    care = CarePlan(ceiling="general", ceiling_set_by_role="consultant")
    patient = Patient(Context(care=care, ward="WARD-A", ward_level=LevelOfCare.GENERAL))
    patient.see(Band.HIGH, 0)
    patient.tick(240)
    assert not patient.of(CriticalCareBedRequested)
    assert len(patient.of(AlertEscalated)) == 1, "the alert still escalates"


def test_not_for_icu_ceiling_caps_the_request_at_hdu() -> None:
    care = CarePlan(ceiling="hdu", ceiling_set_by_role="consultant")
    patient = Patient(Context(care=care, ward="WARD-A", ward_level=LevelOfCare.GENERAL))
    patient.see(Band.HIGH, 0)
    (request,) = patient.of(CriticalCareBedRequested)
    assert request.level_of_care == "hdu"
    assert "capped to HDU by the ceiling of care" in request.reasons[0]


def test_a_ceiling_set_after_the_request_withdraws_it_and_is_issued() -> None:
    patient = Patient()
    patient.see(Band.HIGH, 0)
    patient.context = Context(
        care=CarePlan(ceiling="general", ceiling_set_by_role="consultant"),
        ward="WARD-A",
        ward_level=LevelOfCare.GENERAL,
    )
    patient.see(Band.HIGH, 3)
    (withdrawn,) = patient.of(CriticalCareBedRequestWithdrawn)
    assert withdrawn.reason == "ceiling_of_care"
    assert patient.issued[-1].emitted_because == "care_plan"


def test_discharge_and_transfer_out_of_the_general_ward_end_the_request() -> None:
    for context, reason in (
        (Context(CarePlan(), "WARD-A", LevelOfCare.GENERAL, discharged=True), "discharged"),
        (Context(CarePlan(), "HDU", LevelOfCare.HDU), "left_general_ward"),
    ):
        patient = Patient()
        patient.see(Band.HIGH, 0)
        patient.context = context
        patient.see(Band.HIGH, 2)
        (withdrawn,) = patient.of(CriticalCareBedRequestWithdrawn)
        assert withdrawn.reason == reason


def test_high_after_a_sustained_medium_supersedes_hdu_with_icu() -> None:
    patient = Patient()
    patient.see(Band.MEDIUM, 0)
    patient.tick(60)
    patient.see(Band.HIGH, 70)
    hdu, icu = patient.of(CriticalCareBedRequested)
    (withdrawn,) = patient.of(CriticalCareBedRequestWithdrawn)
    assert (hdu.level_of_care, icu.level_of_care) == ("hdu", "icu")
    assert withdrawn.request_id == hdu.event_id and withdrawn.reason == "superseded"


# --- treatment pathways ---------------------------------------------------------------------

SUSPECTED = Context(
    care=CarePlan(suspected_infection=True), ward="WARD-A", ward_level=LevelOfCare.GENERAL
)


def test_suspected_infection_with_positive_qsofa_recommends_the_sepsis_bundle() -> None:
    patient = Patient(SUSPECTED)
    patient.see(Band.MEDIUM, 0, qsofa_positive=True)
    (recommendation,) = patient.issued[0].recommendations
    assert recommendation.pathway == "sepsis-screen-and-bundle"
    assert recommendation.reason.startswith("suspected infection; qSOFA 2 of 3")
    actions = " | ".join(a.action for a in recommendation.actions)
    for item in ("blood cultures", "lactate", "antibiotics", "fluids", "oxygen", "urine output"):
        assert item in actions
    assert all(a.source for a in recommendation.actions)


def test_positive_sirs_alone_recommends_the_bundle() -> None:
    patient = Patient(SUSPECTED)
    patient.see(Band.LOW, 0, sirs_positive=True)
    (recommendation,) = patient.issued[0].recommendations
    assert "SIRS 2 of 4 criteria" in recommendation.reason


def test_no_sepsis_bundle_without_suspected_infection() -> None:
    patient = Patient()
    patient.see(Band.MEDIUM, 0, qsofa_positive=True)
    assert patient.issued[0].recommendations == []


def test_the_bundle_is_withdrawn_when_the_trigger_clears_and_kept_when_undecidable() -> None:
    patient = Patient(SUSPECTED)
    patient.see(Band.MEDIUM, 0, qsofa_positive=True)
    patient.see(Band.MEDIUM, 1, qsofa_positive=None)  # cannot be judged: still recommended
    patient.see(Band.MEDIUM, 2, qsofa_positive=False, sirs_positive=None)  # SIRS undecided
    assert len(patient.issued) == 1
    patient.see(Band.MEDIUM, 3, qsofa_positive=False)
    assert patient.issued[-1].emitted_because == "recommendations"
    assert patient.issued[-1].recommendations == []
    assert patient.issued[-1].recommendations_withdrawn == ["sepsis-screen-and-bundle"]
