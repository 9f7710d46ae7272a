"""The ADT fold: encounter status and current location from admissions, transfers and discharges.

Pure. Each patient keeps a bounded log of ADT events sorted by `(occurred_at, event_id)`; the
state is recomputed by folding the log in that order whenever an ADT event arrives. So any arrival
order of the same events converges to the same state, and an event already in the log (same
`event_id`) changes nothing. When the log is full (`MAX_ENTRIES`), its oldest entry is folded into
`base` and dropped; an event older than every retained entry is then ignored (too old to place).
Convergence is exact for patients with at most `MAX_ENTRIES` ADT events.

What each event does, in event-time order:

- PatientAdmitted (A01): in_progress, in the event's ward and bed (no bed: not known yet).
  Remembers the state before it, for an A11.
- PatientRegistered (A04): in_progress. Starts a visit in the event's ward, without a bed, unless a
  visit is in progress; then only a ward it names changes the location.
- PatientTransferred (A02): in_progress, in the event's ward and bed.
- PatientDischarged (A03): finished; `ward` is the ward left, no bed.
- PatientUpdated (A08): status unchanged; a field named in `cleared` is emptied, a field given is
  set, and a new ward without a bed clears the bed.
- AdmissionCancelled (A11): back to the state before the admission (unknown, no location, if the
  admission is not known).
- TransferCancelled (A12): in_progress, in the event's ward and bed (where the patient is back).
- DischargeCancelled (A13): in_progress, in the event's ward and bed.

A registration without admission (an emergency arrival) is `in_progress`: the patient is in the
hospital; EncounterStatus has no separate "registered". `encounter_id` is not compared: an event
applies to the patient's current encounter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

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
from schemas.base import Contract, Identifier, UtcDatetime
from schemas.patients import EncounterStatus

MAX_ENTRIES = 64

AdtEvent = (
    PatientAdmitted
    | PatientRegistered
    | PatientTransferred
    | PatientDischarged
    | PatientUpdated
    | AdmissionCancelled
    | TransferCancelled
    | DischargeCancelled
)
ADT_EVENT_TYPES: tuple[type[AdtEvent], ...] = (
    PatientAdmitted,
    PatientRegistered,
    PatientTransferred,
    PatientDischarged,
    PatientUpdated,
    AdmissionCancelled,
    TransferCancelled,
    DischargeCancelled,
)
AdtKind = Literal[
    "PatientAdmitted",
    "PatientRegistered",
    "PatientTransferred",
    "PatientDischarged",
    "PatientUpdated",
    "AdmissionCancelled",
    "TransferCancelled",
    "DischargeCancelled",
]


class Location(Contract):
    status: EncounterStatus = "unknown"
    ward: Identifier | None = None
    bed: Identifier | None = None


class AdtState(Location):
    """The folded state, plus what an admission cancel (A11) would go back to."""

    before_admission: Location | None = None


class AdtEntry(Contract):
    """What the fold needs of one ADT event."""

    at: UtcDatetime
    event_id: str
    kind: AdtKind
    ward: Identifier | None = None
    bed: Identifier | None = None
    cleared: tuple[str, ...] = ()

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.at, self.event_id)


class AdtLog(Contract):
    base: AdtState = AdtState()
    entries: tuple[AdtEntry, ...] = ()
    state: AdtState = AdtState()
    """`base` folded with `entries`, kept so a snapshot need not fold again."""


def entry_of(event: AdtEvent) -> AdtEntry:
    return AdtEntry(
        at=event.occurred_at,
        event_id=str(event.event_id),
        kind=event.kind,
        ward=event.ward,
        bed=getattr(event, "bed", None),
        cleared=tuple(getattr(event, "cleared", ())),
    )


def step(state: AdtState, entry: AdtEntry) -> AdtState:
    """The state after one ADT event."""
    kind, ward, bed = entry.kind, entry.ward, entry.bed
    keep = state.before_admission
    if kind == "PatientAdmitted":
        before = Location(status=state.status, ward=state.ward, bed=state.bed)
        return AdtState(status="in_progress", ward=ward, bed=bed, before_admission=before)
    if kind == "PatientRegistered":
        if state.status != "in_progress":
            return AdtState(status="in_progress", ward=ward)
        if ward is None or ward == state.ward:
            return state
        return AdtState(status="in_progress", ward=ward, before_admission=keep)
    if kind in ("PatientTransferred", "TransferCancelled", "DischargeCancelled"):
        return AdtState(status="in_progress", ward=ward, bed=bed, before_admission=keep)
    if kind == "PatientDischarged":
        return AdtState(status="finished", ward=ward, before_admission=keep)
    if kind == "PatientUpdated":
        new_ward = None if "ward" in entry.cleared else (ward or state.ward)
        old_bed = state.bed if new_ward == state.ward else None
        new_bed = None if "bed" in entry.cleared else (bed or old_bed)
        return state.model_copy(update={"ward": new_ward, "bed": new_bed})
    # AdmissionCancelled: back to where the patient was before the admission.
    if keep is None:
        return AdtState()
    return AdtState(status=keep.status, ward=keep.ward, bed=keep.bed)


def fold(base: AdtState, entries: tuple[AdtEntry, ...]) -> AdtState:
    state = base
    for entry in entries:
        state = step(state, entry)
    return state


def record_adt(log: AdtLog, event: AdtEvent) -> AdtLog:
    """The log with the event placed in event-time order; the same log if it changes nothing
    (a duplicate, or older than every retained entry of a full log)."""
    entry = entry_of(event)
    if any(e.event_id == entry.event_id for e in log.entries):
        return log
    if len(log.entries) >= MAX_ENTRIES and entry.order < log.entries[0].order:
        return log
    entries = tuple(sorted((*log.entries, entry), key=lambda e: e.order))
    base = log.base
    while len(entries) > MAX_ENTRIES:
        base, entries = step(base, entries[0]), entries[1:]
    return AdtLog(base=base, entries=entries, state=fold(base, entries))
