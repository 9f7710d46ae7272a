"""FHIR R4 Encounter -> one admissions inbound item (registered, admitted, transferred,
discharged or admission cancelled), read from its status and its location history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.encounter import Encounter, EncounterLocation

from services.ingest.fhir_common import (
    Mapped,
    TimeAt,
    aware_time,
    first_time,
    patient_mrn,
    reference_id,
    validate,
    without_none,
)
from services.ingest.mapping import InboundItem, MappingError

PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
# Rooms ("ro") and other places (building, level, site...) are neither a ward nor a bed: not read.
PLACES = {"wa": "ward", "bd": "bed"}
LOCATION_STATUSES = ("planned", "active", "reserved", "completed")
REGISTERING = ("arrived", "triaged", "planned")
CANCELLING = ("cancelled", "entered-in-error")
WITHOUT_EVENT = ("onleave", "unknown")
_EARLIEST = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Stay:
    """One `Encounter.location[index]` entry that is a ward or a bed."""

    index: int
    place: str  # "ward" or "bed"
    location_id: str
    status: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class Stays:
    stays: list[Stay]

    def latest(self, place: str, statuses: tuple[str, ...]) -> Stay | None:
        """The entry of `place` in `statuses` that began (or, if completed, ended) last."""
        found = [s for s in self.stays if s.place == place and s.status in statuses]
        if "completed" in statuses:
            return max(found, key=lambda s: (s.end or _EARLIEST, s.index), default=None)
        return max(found, key=lambda s: (s.start or _EARLIEST, s.index), default=None)

    def last_known(self) -> tuple[Stay | None, Stay | None]:
        """The current ward and bed, else the most recently left ones."""
        ward = self.latest("ward", ("active",))
        if ward is not None:
            return ward, self.latest("bed", ("active",))
        return self.latest("ward", ("completed",)), self.latest("bed", ("completed",))


def map_encounter(resource: dict[str, Any]) -> Mapped:
    encounter = validate(Encounter, resource, "Encounter")
    meta = encounter.meta
    version = meta.versionId if meta is not None else None
    status = encounter.status
    if status in WITHOUT_EVENT:
        return Mapped(
            [], "Encounter", encounter.id, version, f"status {status}: no admission event"
        )
    known = (*REGISTERING, "in-progress", "finished", *CANCELLING)
    if status not in known:
        raise MappingError("Encounter.status", "value", "is not an R4 Encounter status")
    identifiers = encounter.identifier or []
    common: InboundItem = {
        "patient_id": patient_mrn(encounter.subject, "Encounter"),
        "encounter_id": encounter.id or (identifiers[0].value if identifiers else None),
    }
    stays = Stays([s for i, e in enumerate(encounter.location or []) if (s := stay(i, e))])
    # Times are read only where the status needs them: an unused partial date is no error.
    period = encounter.period
    start = (period.start if period else None, "Encounter.period.start")
    updated = (meta.lastUpdated if meta else None, "Encounter.meta.lastUpdated")

    if status in CANCELLING:
        ward, bed = stays.last_known()
        if ward is None:
            return Mapped([], "Encounter", encounter.id, version, f"status {status}: no ward")
        item = {"kind": "AdmissionCancelled", "occurred_at": _needed(updated, start), **common}
        item |= {"ward": ward.location_id, "bed": bed and bed.location_id}
    elif status in REGISTERING:
        ward = stays.latest("ward", ("active",)) or stays.latest("ward", ("planned", "reserved"))
        item = {"kind": "PatientRegistered", "occurred_at": _needed(start, updated), **common}
        item["ward"] = ward and ward.location_id
    elif status == "finished":
        ward, _ = stays.last_known()
        end = aware_time(period.end if period else None, "Encounter.period.end")
        if end is None:
            raise MappingError("Encounter.period.end", "required", "a discharge needs period.end")
        item = {"kind": "PatientDischarged", "occurred_at": end, **common}
        item["ward"] = _needed_ward(ward).location_id
    else:  # in-progress
        item = _admitted_or_transferred(stays, start, updated) | common
    return Mapped([without_none(item)], "Encounter", encounter.id, version)


def _admitted_or_transferred(stays: Stays, start: TimeAt, updated: TimeAt) -> InboundItem:
    ward = _needed_ward(stays.latest("ward", ("active",)))
    bed = stays.latest("bed", ("active",))
    previous = stays.latest("ward", ("completed",))
    here = {"ward": ward.location_id, "bed": bed and bed.location_id}
    if previous is None:
        return {"kind": "PatientAdmitted", "occurred_at": _needed(start), **here}
    moved_at = ward.start or first_time(updated)
    if moved_at is None:
        location = f"Encounter.location[{ward.index}].period.start"
        raise MappingError(location, "required", "a transfer needs the new location's start")
    previous_bed = stays.latest("bed", ("completed",))
    return {
        "kind": "PatientTransferred",
        "occurred_at": moved_at,
        "from_ward": previous.location_id,
        "from_bed": previous_bed and previous_bed.location_id,
        **here,
    }


def stay(index: int, entry: EncounterLocation) -> Stay | None:
    """The entry as a ward or bed stay; None for other kinds of place."""
    place = _place(entry.physicalType)
    if place is None:
        return None
    path = f"Encounter.location[{index}]"
    location_id = reference_id(entry.location.reference, "Location")
    if location_id is None and entry.location.identifier is not None:
        location_id = entry.location.identifier.value
    if location_id is None:
        raise MappingError(f"{path}.location", "required", "needs a Location/<id> reference")
    status = entry.status or "active"
    if status not in LOCATION_STATUSES:
        raise MappingError(f"{path}.status", "value", "is not an R4 encounter location status")
    period = entry.period
    start = first_time((period.start if period else None, f"{path}.period.start"))
    end = first_time((period.end if period else None, f"{path}.period.end"))
    return Stay(index, place, location_id, status, start, end)


def _place(physical_type: CodeableConcept | None) -> str | None:
    if physical_type is None:
        return "ward"
    for coding in physical_type.coding or []:
        if coding.system in (PHYSICAL_TYPE, None) and coding.code in PLACES:
            return PLACES[coding.code]
    return None


def _needed(*candidates: TimeAt) -> datetime:
    """The first present time of the candidates; missing -> `Encounter.period.start` required."""
    time = first_time(*candidates)
    if time is None:
        raise MappingError("Encounter.period.start", "required", "is required for this status")
    return time


def _needed_ward(ward: Stay | None) -> Stay:
    if ward is None:
        raise MappingError("Encounter.location", "required", "needs a ward (Location/<id>)")
    return ward
