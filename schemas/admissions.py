"""Admissions context: admit, transfer and discharge (HL7 v2 ADT A01/A02/A03, FHIR Encounter)."""

from __future__ import annotations

from typing import Literal

from schemas.base import Event, Identifier


class PatientAdmitted(Event):
    """A patient was admitted to a ward; without `bed` the scheduler finds one."""

    kind: Literal["PatientAdmitted"] = "PatientAdmitted"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier
    bed: Identifier | None = None


class PatientTransferred(Event):
    """A patient moved from one ward (and bed) to another; without `bed` the scheduler finds one."""

    kind: Literal["PatientTransferred"] = "PatientTransferred"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    from_ward: Identifier
    ward: Identifier
    bed: Identifier | None = None


class PatientDischarged(Event):
    """A patient left the hospital; their bed becomes dirty, never directly available."""

    kind: Literal["PatientDischarged"] = "PatientDischarged"
    patient_id: Identifier
    encounter_id: Identifier | None = None
    ward: Identifier
