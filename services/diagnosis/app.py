"""Diagnosis service: patients.state -> assessments, escalations and bed requests.

The pure parts are `domain.py` (NEWS2), `scores.py` (qSOFA, SIRS, shock index), `pathways.py`
and `alerting.py` (what to issue, alerts, escalation, bed requests). This module keeps one alert
state per patient in memory, writes every change of it to the compacted `patients.alerts`, and
reads that topic back before joining its group, so a restart loses no open alert or bed request.
A tick every `tick_seconds` lets time act on the patients of the partitions this replica owns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from schemas.assessments import (
    AlertStateUpdated,
    AssessmentIssued,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
    OpenAlert,
)
from schemas.codec import decode
from schemas.patients import PatientStateUpdated
from schemas.topics import PATIENTS_ALERTS, PATIENTS_ASSESSMENTS, PATIENTS_STATE, TopicSpec
from schemas.vocabulary import Band
from services.common import metrics
from services.common.handlers import RECORD_PARTITION, Output
from services.common.hospital import HospitalLayout, load_layout
from services.common.kafka import make_reader, read_to_end, topic
from services.common.stage import StageRunner
from services.diagnosis.alerting import Context, Decision, on_assessment, on_tick
from services.diagnosis.config import DiagnosisSettings
from services.diagnosis.domain import NEWS2_PARAMETERS, ScoringPolicy, assess
from services.diagnosis.rules import load_rules
from services.diagnosis.scores import with_sepsis_scores

STAGE = "diagnosis"
log = logging.getLogger(__name__)

ASSESSMENTS = Counter(
    "wardflow_assessments_total",
    "Assessments issued, by NEWS2 band ('incomplete' when no band can be given).",
    ["band"],
)
ASSESSMENTS_UNCHANGED = Counter(
    "wardflow_assessments_unchanged_total",
    "Snapshots scored without issuing an assessment (same band, or an improvement on hold).",
)
OBSERVATION_TO_ASSESSMENT_SECONDS = Histogram(
    "wardflow_observation_to_assessment_seconds",
    "From the newest observation in a snapshot to the assessment issued from it.",
    buckets=metrics.LAG_BUCKETS,
)
ALERTS_UNACKNOWLEDGED = Gauge(
    "wardflow_alerts_unacknowledged",
    "Open alerts nobody has acknowledged yet (escalated or not), of the patients this replica"
    " owns.",
    ["band"],
)
ALERT_OLDEST_UNACKNOWLEDGED_SECONDS = Gauge(
    "wardflow_alert_oldest_unacknowledged_seconds",
    "Age of the oldest open alert nobody has acknowledged yet (escalated or not), of the patients"
    " this replica owns; 0 when there is none.",
    ["band"],
)
ACKNOWLEDGEMENT_SECONDS = Histogram(
    "wardflow_alert_acknowledgement_seconds",
    "From an alert being raised to its acknowledgement.",
    ["band"],
    buckets=(30, 60, 300, 600, 900, 1800, 2700, 3600, 7200, 14400),
)
ESCALATIONS = Counter(
    "wardflow_alert_escalations_total", "Alerts not acknowledged in time, escalated.", ["band"]
)
BED_REQUESTS_SENT = Counter(
    "wardflow_critical_care_requests_sent_total",
    "HDU/ICU bed requests sent to the scheduler.",
    ["level_of_care"],
)
BED_REQUESTS_WITHDRAWN = Counter(
    "wardflow_critical_care_withdrawals_sent_total",
    "HDU/ICU bed requests withdrawn, by reason.",
    ["reason"],
)
ALERTING_BANDS = (Band.MEDIUM, Band.HIGH)


class Diagnoser:
    """The stage's handler and ticker, around one in-memory alert state per patient."""

    def __init__(self, settings: DiagnosisSettings, layout: HospitalLayout | None = None) -> None:
        self.settings = settings
        self.rules = load_rules(settings.rules_file)
        self.layout = layout or load_layout(settings.hospital_layout)
        self.policy = ScoringPolicy(
            max_age_seconds={p: settings.max_observation_age_seconds for p in NEWS2_PARAMETERS},
            rules=self.rules,
        )
        self.states: dict[str, AlertStateUpdated] = {}
        self.pending: dict[str, AssessmentIssued] = {}
        self.contexts: dict[str, Context] = {}
        self.partitions: dict[str, int] = {}
        self.unacknowledged: dict[str, OpenAlert] = {}  # patient -> open unacknowledged alert
        self.owned: frozenset[int] | None = None  # partitions owned at the last tick (None: all)

    async def restore(self) -> None:
        """Read patients.alerts to its end: the latest alert state of every patient."""
        started, restored = time.monotonic(), 0
        reader = make_reader(self.settings)
        await reader.start()
        try:
            deadline = started + self.settings.restore_timeout_seconds
            name = topic(self.settings, PATIENTS_ALERTS)
            async with aclosing(read_to_end(reader, name, deadline)) as records:
                async for record in records:
                    try:
                        state: AlertStateUpdated = decode(PATIENTS_ALERTS, record.value or b"")
                    except ValidationError:
                        continue  # not ours to judge; the compacted topic has only our writes
                    known = self.states.get(state.patient_id)
                    if known is None or state.version > known.version:
                        self.states[state.patient_id] = state
                        self.partitions[state.patient_id] = record.partition
                        self._track(state.patient_id, state)
                        restored += 1
        finally:
            await reader.stop()
        self._gauge_alerts(datetime.now(UTC))
        log.info(
            "restored alert states patients=%d seconds=%.1f",
            len(self.states),
            time.monotonic() - started,
        )

    def context(self, state: PatientStateUpdated) -> Context:
        ward = None if state.ward is None else self.layout.ward(state.ward)
        return Context(
            care=state.care,
            ward=state.ward,
            ward_level=None if ward is None else ward.level_of_care,
            discharged=state.encounter_status == "finished",
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
        patient = state.patient_id
        context = self.context(state)
        self.contexts[patient] = context
        self.partitions[patient] = RECORD_PARTITION.get()
        decision = on_assessment(
            self.states.get(patient),
            self.pending.get(patient),
            assessment,
            context,
            now,
            self.rules,
        )
        outputs = self._apply(patient, decision, now)
        latency = (now - state.cause_recorded_at).total_seconds()
        metrics.END_TO_END_LATENCY_SECONDS.labels(STAGE).observe(max(0.0, latency))
        issued = [o for o in decision.outputs if isinstance(o, AssessmentIssued)]
        if not issued:
            ASSESSMENTS_UNCHANGED.inc()
        for item in issued:
            observed = [s.observed_at for s in item.sub_scores if s.observed_at is not None]
            if observed:
                seconds = (now - max(observed)).total_seconds()
                OBSERVATION_TO_ASSESSMENT_SECONDS.observe(max(0.0, seconds))
        return outputs

    async def tick(self, owned: frozenset[int]) -> Sequence[Output]:
        """Escalate overdue alerts, issue improvements that held, request beds for sustained
        bands: for the patients of the partitions this replica owns."""
        now = datetime.now(UTC)
        self.owned = owned
        outputs: list[Output] = []
        for patient, state in list(self.states.items()):
            if self.partitions.get(patient, -1) not in owned:
                continue
            if state.alert is None and state.improving_since is None and not state.alerting_since:
                continue  # nothing time could change
            decision = on_tick(
                state, self.pending.get(patient), self.contexts.get(patient), now, self.rules
            )
            if decision.escalated is not None:
                ESCALATIONS.labels(decision.escalated.value).inc()
            outputs.extend(self._apply(patient, decision, now))
        self._gauge_alerts(now)  # the ages grow with time
        return outputs

    def _apply(self, patient: str, decision: Decision, now: datetime) -> list[Output]:
        if decision.pending is None:
            self.pending.pop(patient, None)
        else:
            self.pending[patient] = decision.pending
        outputs = [Output(PATIENTS_ASSESSMENTS, event) for event in decision.outputs]
        for event in decision.outputs:
            if isinstance(event, AssessmentIssued):
                ASSESSMENTS.labels(event.band.value if event.band else "incomplete").inc()
            elif isinstance(event, CriticalCareBedRequested):
                BED_REQUESTS_SENT.labels(event.level_of_care).inc()
            elif isinstance(event, CriticalCareBedRequestWithdrawn):
                BED_REQUESTS_WITHDRAWN.labels(event.reason).inc()
        if decision.acknowledged is not None:
            band = decision.acknowledged.band.value
            ACKNOWLEDGEMENT_SECONDS.labels(band).observe(decision.acknowledged.seconds)
        if decision.changed:
            self.states[patient] = decision.state
            outputs.append(Output(PATIENTS_ALERTS, decision.state))
            if self._track(patient, decision.state):
                self._gauge_alerts(now)
        return outputs

    def _track(self, patient: str, state: AlertStateUpdated) -> bool:
        """Keep the index of unacknowledged alerts; True when the patient's entry changed."""
        before = self.unacknowledged.get(patient)
        after = _unacknowledged(state)
        if after is None:
            self.unacknowledged.pop(patient, None)
        else:
            self.unacknowledged[patient] = after
        return before != after

    def _gauge_alerts(self, now: datetime) -> None:
        """Count the open unacknowledged alerts per band, and the oldest one's age, over the
        patients of the partitions this replica owns (another replica reports the others)."""
        counts = dict.fromkeys(ALERTING_BANDS, 0)
        oldest = dict.fromkeys(ALERTING_BANDS, 0.0)
        for patient, alert in self.unacknowledged.items():
            if self.owned is not None and self.partitions.get(patient, -1) not in self.owned:
                continue
            counts[alert.band] += 1
            age = (now - alert.raised_at).total_seconds()
            oldest[alert.band] = max(oldest[alert.band], age)
        for band in ALERTING_BANDS:
            ALERTS_UNACKNOWLEDGED.labels(band.value).set(counts[band])
            ALERT_OLDEST_UNACKNOWLEDGED_SECONDS.labels(band.value).set(oldest[band])


def _unacknowledged(state: AlertStateUpdated) -> OpenAlert | None:
    """The patient's open alert if it is medium or high and nobody has acknowledged it yet."""
    alert = state.alert
    if alert is None or alert.acknowledged_at is not None or alert.band not in ALERTING_BANDS:
        return None
    return alert


def build(settings: DiagnosisSettings) -> StageRunner:
    diagnoser = Diagnoser(settings)
    return StageRunner(
        STAGE,
        settings,
        [PATIENTS_STATE],
        diagnoser,
        prepare=diagnoser.restore,
        ticker=diagnoser.tick,
        tick_seconds=settings.tick_seconds,
    )
