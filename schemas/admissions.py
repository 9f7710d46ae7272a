"""Admissions context: registration, admit, transfer, discharge, updates and their cancels.

The HL7 v2 ADT trigger each event corresponds to is named in its docstring; FHIR Encounter maps onto
the same events. Patient identifiers here are always the keyed pseudonym ingest made of the MRN.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.base import Event, Identifier
from schemas.vocabulary import Capability, Sex

LocationField = Literal["ward", "bed"]


class PatientAdmitted(Event):
    """A patient was admitted to a ward (A01, A06); without `bed` the scheduler finds one that
    has every capability in `needs`, in a bay whose sex policy accepts `sex`."""

    kind: Literal["PatientAdmitted"] = "PatientAdmitted"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier
    bed: Identifier | None = None
    needs: list[Capability] = Field(default=[], max_length=4)
    sex: Sex | None = None


class PatientRegistered(Event):
    """A patient was registered without admission, e.g. an emergency arrival or outpatient (A04)."""

    kind: Literal["PatientRegistered"] = "PatientRegistered"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier | None = None


class PatientTransferred(Event):
    """A patient moved from one ward (and bed) to another (A02); without `bed` the scheduler
    finds one matching `needs` and `sex` (as for PatientAdmitted)."""

    kind: Literal["PatientTransferred"] = "PatientTransferred"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    from_ward: Identifier
    from_bed: Identifier | None = None
    ward: Identifier
    bed: Identifier | None = None
    needs: list[Capability] = Field(default=[], max_length=4)
    sex: Sex | None = None


class PatientDischarged(Event):
    """A patient left the hospital (A03); their bed becomes dirty, never directly available."""

    kind: Literal["PatientDischarged"] = "PatientDischarged"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier


class PatientUpdated(Event):
    """Visit information changed (A08). None means "not sent, unchanged"; a field named in
    `cleared` was explicitly emptied (HL7 `""`)."""

    kind: Literal["PatientUpdated"] = "PatientUpdated"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier | None = None
    bed: Identifier | None = None
    cleared: list[LocationField] = Field(default=[], max_length=2)


class AdmissionCancelled(Event):
    """An admission was entered in error and is reversed (A11)."""

    kind: Literal["AdmissionCancelled"] = "AdmissionCancelled"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier
    bed: Identifier | None = None


class TransferCancelled(Event):
    """A transfer is reversed (A12): the patient is back in `ward`/`bed` (their location before
    the transfer), no longer in `cancelled_ward`/`cancelled_bed`."""

    kind: Literal["TransferCancelled"] = "TransferCancelled"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier
    bed: Identifier | None = None
    cancelled_ward: Identifier
    cancelled_bed: Identifier | None = None


class DischargeCancelled(Event):
    """A discharge is reversed (A13): the patient is back in `ward` (and `bed`)."""

    kind: Literal["DischargeCancelled"] = "DischargeCancelled"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier
    bed: Identifier | None = None
