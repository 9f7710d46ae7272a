"""The topic registry: which events travel on which topic, keyed by what.

Topic names are `<context>.<stream>`. A deployment may prefix them all (`WARDFLOW_TOPIC_PREFIX`),
which tests use to isolate themselves on a shared broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from schemas.admissions import (
    AdmissionCancelled,
    DischargeCancelled,
    PatientAdmitted,
    PatientDischarged,
    PatientRegistered,
    PatientTransferred,
    PatientUpdated,
    TransferCancelled,
)
from schemas.assessments import (
    AlertEscalated,
    AlertStateUpdated,
    AssessmentIssued,
    CriticalCareBedRequested,
    CriticalCareBedRequestWithdrawn,
)
from schemas.beds import (
    BedAssigned,
    BedRequestCancelled,
    BedRequested,
    BedRequestWaiting,
    BedReservationReleased,
    BedReserved,
    BedStateSnapshot,
    BedStatusChanged,
    BedStatusReported,
    BedTransitionRefused,
    WardAvailabilityUpdated,
)
from schemas.care import CARE_EVENTS
from schemas.deadletter import EventDeadLettered
from schemas.layout import WardLayoutSet
from schemas.observations import Spo2ScaleSet, VitalSignsObserved, VitalSignsRecorded
from schemas.patients import PatientStateUpdated
from schemas.resources import ResourceStatusReported


@dataclass(frozen=True)
class TopicSpec:
    name: str
    events: tuple[type[BaseModel], ...]
    key: str
    description: str
    compacted: bool = False


ADT_EVENTS = (
    PatientAdmitted,
    PatientRegistered,
    PatientTransferred,
    PatientDischarged,
    PatientUpdated,
    AdmissionCancelled,
    TransferCancelled,
    DischargeCancelled,
)

EVENTS_RAW = TopicSpec(
    "events.raw",
    (
        VitalSignsObserved,
        Spo2ScaleSet,
        *CARE_EVENTS,
        *ADT_EVENTS,
        BedStatusReported,
        ResourceStatusReported,
    ),
    "patient_id, or ward for bed and resource events",
    "Everything ingest accepted, as sent, after validation against the contract.",
)
EVENTS_CLEAN = TopicSpec(
    "events.clean",
    (
        VitalSignsRecorded,
        Spo2ScaleSet,
        *CARE_EVENTS,
        *ADT_EVENTS,
        BedStatusReported,
        ResourceStatusReported,
    ),
    "patient_id, or ward for bed and resource events",
    "Canonical events: canonical units, plausible values, duplicates removed.",
)
EVENTS_DLQ = TopicSpec(
    "events.dlq",
    (EventDeadLettered,),
    "the original record's key",
    "Records a stage could not process, with the stage, reason and original payload.",
)
PATIENTS_STATE = TopicSpec(
    "patients.state",
    (PatientStateUpdated,),
    "patient_id",
    "The fused live state of each patient after every relevant change.",
    compacted=True,
)
PATIENTS_ASSESSMENTS = TopicSpec(
    "patients.assessments",
    (
        AssessmentIssued,
        AlertEscalated,
        CriticalCareBedRequested,
        CriticalCareBedRequestWithdrawn,
    ),
    "patient_id",
    "Early-warning assessments (on a change of band, completeness or recommendations),"
    " escalations of unacknowledged alerts, and HDU/ICU bed requests and their withdrawals.",
)
PATIENTS_ALERTS = TopicSpec(
    "patients.alerts",
    (AlertStateUpdated,),
    "patient_id",
    "Each patient's open alert and pending bed request, latest record per patient.",
    compacted=True,
)
BEDS_EVENTS = TopicSpec(
    "beds.events",
    (BedStatusChanged,),
    "ward",
    "Every change of a bed's status in the live state.",
)
BEDS_AVAILABILITY = TopicSpec(
    "beds.availability",
    (WardAvailabilityUpdated,),
    "ward",
    "Beds by status per ward, latest record per ward.",
    compacted=True,
)
BEDS_STATE = TopicSpec(
    "beds.state",
    (BedStateSnapshot,),
    "scope (ward:<W> or level:<L>)",
    "The scheduler's live Redis state per ward and per critical-care level, latest record per"
    " scope: the source `wardflow state rebuild` restores Redis from.",
    compacted=True,
)
SCHEDULING_DECISIONS = TopicSpec(
    "scheduling.decisions",
    (BedAssigned, BedRequestWaiting, BedTransitionRefused, BedReserved, BedReservationReleased),
    "ward",
    "What the scheduler decided and why: assignments, critical-care reservations and their"
    " releases, waiting requests, refused transitions.",
)
SCHEDULING_REQUESTS = TopicSpec(
    "scheduling.requests",
    (BedRequested, BedRequestCancelled, BedStatusReported),
    "patient_id (BedRequested), request_id (BedRequestCancelled), ward (BedStatusReported)",
    "What people ask of the scheduler through its API: bed requests and their cancellations,"
    " and beds blocked or unblocked by a bed manager.",
)
HOSPITAL_LAYOUT = TopicSpec(
    "hospital.layout",
    (WardLayoutSet,),
    "ward id",
    "Changes to the hospital layout, one ward's whole definition each, latest record per ward:"
    " every scheduler replica folds them over its layout file at start and follows them.",
    compacted=True,
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    EVENTS_RAW,
    EVENTS_CLEAN,
    EVENTS_DLQ,
    PATIENTS_STATE,
    PATIENTS_ASSESSMENTS,
    PATIENTS_ALERTS,
    BEDS_EVENTS,
    BEDS_AVAILABILITY,
    BEDS_STATE,
    SCHEDULING_DECISIONS,
    SCHEDULING_REQUESTS,
    HOSPITAL_LAYOUT,
)


def full_name(spec: TopicSpec, prefix: str = "") -> str:
    """The topic's name on the broker, with the deployment's prefix."""
    return f"{prefix}{spec.name}"
