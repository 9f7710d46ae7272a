"""HL7 v2 in, inbound items out: the pure HL7 layer of ingest.

`normalise` -> `split_messages` -> `to_items` (which starts with `parse_header`); `ack` and
`batch_ack` (in `hl7_ack`) answer. Parsing is the `hl7` library's; this module only decides what a
field means to wardflow. Pure: no I/O and no clock; the zone of timestamps sent without an offset
is passed in. Message texts are segments joined by CR, without a trailing CR.

ORU^R01 vital signs are mapped in `hl7_oru`; field access and timestamps shared with it live in
`hl7_fields`.

Data minimisation: only MSH, EVN, PID-3, PID-8 (administrative sex, for bay allocation),
PV1-3/6/19, OBR-7 and OBX are read; names, addresses, phone numbers and every other demographic
are never touched, and no error quotes a value.

Mapping decisions worth knowing:
- MSH-9 decides the event; EVN-1 is ignored even when it disagrees.
- PID-8 (administrative sex, table 0001: F, M, O, U) becomes `sex` of an admission or transfer
  (the scheduler matches bays' sex policy); any other code, or none, leaves it unset.
- `""` (HL7 explicit null) means "clear": in A08 it names the field in `cleared`; elsewhere a
  required value sent as `""` is missing. A whole PL field sent as `""` clears ward and bed.
- A12 follows HL7 2.5 (3.3.12): PV1-3 "must show the location of the patient prior to the
  original transfer", i.e. where the patient is back (`ward`/`bed`); PV1-6, the prior location,
  carries the cancelled transfer's destination (`cancelled_ward`/`cancelled_bed`).
- ORU^R01: see `hl7_oru` (only results with OBX-11 F, C or A count; one item per OBR group and
  observation time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from itertools import takewhile
from typing import Any

import hl7

from services.ingest.hl7_ack import ack, batch_ack
from services.ingest.hl7_fields import NULL, first_timestamp, present, value
from services.ingest.hl7_oru import vital_sign_items
from services.ingest.mapping import InboundItem, MappingError

__all__ = ["Header", "ack", "batch_ack", "normalise", "parse_header", "split_messages", "to_items"]

FRAMING = ("FHS", "BHS", "BTS", "FTS")
# Triggers whose event is just ward + optional bed from PV1-3.
WARD_AND_BED = {
    "A01": "PatientAdmitted",
    "A06": "PatientAdmitted",
    "A11": "AdmissionCancelled",
    "A13": "DischargeCancelled",
}
ADMINISTRATIVE_SEX = {"F": "female", "M": "male", "O": "other", "U": "unknown"}
"""PID-8 (HL7 table 0001) -> the contract's `sex`; other codes (A, N, ...) are not mapped."""
ADT_TRIGGERS = frozenset({*WARD_AND_BED, "A02", "A03", "A04", "A08", "A12"})


@dataclass(frozen=True)
class Header:
    """What MSH says about a message, enough to route it and to acknowledge it."""

    control_id: str  # MSH-10
    message_type: str  # MSH-9.1, e.g. "ADT"
    trigger: str  # MSH-9.2, e.g. "A01"
    sending_application: str = ""  # MSH-3.1
    sending_facility: str = ""  # MSH-4.1
    receiving_application: str = ""  # MSH-5.1
    receiving_facility: str = ""  # MSH-6.1
    structure: str = ""  # MSH-9.3, e.g. "ADT_A01"
    processing_id: str = ""  # MSH-11.1
    version: str = ""  # MSH-12.1
    field_separator: str = "|"  # MSH-1
    encoding_characters: str = "^~\\&"  # MSH-2


def normalise(payload: bytes | str) -> str:
    """UTF-8 text (BOM dropped), CR between segments, blank segments and edge whitespace gone."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise MappingError("MSH", "encoding", "the message is not valid UTF-8") from None
    text = payload.removeprefix("\ufeff").replace("\r\n", "\r").replace("\n", "\r")
    return "\r".join(s.strip() for s in text.split("\r") if s.strip())


def split_messages(text: str) -> list[str]:
    """One text per MSH; FHS/BHS/BTS/FTS framing is dropped. Only framing may precede MSH."""
    segments = [s.strip() for s in text.split("\r") if s.strip()]
    leading = takewhile(lambda segment: segment[:3] != "MSH", segments)
    if not segments or any(segment[:3] not in FRAMING for segment in leading):
        raise MappingError("MSH", "segment_sequence", "the message must start with MSH")
    return [message.rstrip("\r") for message in hl7.split_file(text)]  # [] for an empty batch


def parse_header(message_text: str) -> Header:
    """The MSH of one message; MappingError when its delimiters, MSH-9 or MSH-10 are unusable."""
    return _parse(message_text)[0]


@dataclass(frozen=True)
class Parsed:
    """A message parsed once: its header and the `hl7` library's message object."""

    header: Header
    message: Any


def parse(message_text: str) -> Parsed:
    """Parse one message (MappingError if its MSH is unusable)."""
    header, message = _parse(message_text)
    return Parsed(header, message)


def to_items(message_text: str, *, tz: tzinfo) -> tuple[Header, list[InboundItem]]:
    """The inbound items one ADT or ORU^R01 message stands for (none for an ORU without vitals)."""
    parsed = parse(message_text)
    return parsed.header, items_of(parsed, tz=tz)


def items_of(parsed: Parsed, *, tz: tzinfo) -> list[InboundItem]:
    """The inbound items of an already parsed message."""
    header, message = parsed.header, parsed.message
    if header.message_type not in ("ADT", "ORU"):
        raise MappingError("MSH-9", "unsupported_message_type", "only ADT and ORU are accepted")
    if not header.trigger:
        raise MappingError("MSH-9", "required", "the trigger event (MSH-9.2) is missing")
    if header.trigger not in (ADT_TRIGGERS if header.message_type == "ADT" else {"R01"}):
        raise MappingError("MSH-9", "unsupported_event", "this trigger event is not accepted")
    pid = _first(message, "PID")
    if pid is None:
        raise MappingError("PID", "segment_sequence", "the message has no PID segment")
    patient_id = _mrn(pid)
    if header.message_type == "ORU":
        return vital_sign_items(message, patient_id, tz=tz)
    evn, msh = _first(message, "EVN"), message[0]
    times = [("EVN-6", value(evn, 6)), ("EVN-2", value(evn, 2)), ("MSH-7", value(msh, 7))]
    event = _adt(header.trigger, _first(message, "PV1"))
    if event["kind"] in ("PatientAdmitted", "PatientTransferred"):
        sex = ADMINISTRATIVE_SEX.get(value(pid, 8).strip().upper())
        if sex is not None:
            event["sex"] = sex
    return [{"occurred_at": first_timestamp(times, tz), "patient_id": patient_id, **event}]


# --- parsing helpers -------------------------------------------------------------------------


def _parse(text: str) -> tuple[Header, Any]:
    if text[:3] != "MSH":
        raise MappingError("MSH", "segment_sequence", "the message must start with MSH")
    separator = text[3:4]
    if len(separator) != 1 or separator.isalnum() or separator.isspace():
        raise MappingError("MSH-1", "encoding", "MSH-1 must be one non-alphanumeric character")
    end = text.find(separator, 4)
    encoding = text[4:end] if end > 0 else ""
    if (
        len(encoding) not in (4, 5)
        or len(set(encoding + separator)) != len(encoding) + 1
        or any(c.isalnum() or c.isspace() for c in encoding)
    ):
        raise MappingError(
            "MSH-2", "encoding", "MSH-2 must be four distinct non-alphanumeric characters"
        )
    message = hl7.parse(text)
    msh = message[0]
    header = Header(
        control_id=present(msh, 10),
        message_type=present(msh, 9),
        trigger=present(msh, 9, 2),
        sending_application=present(msh, 3),
        sending_facility=present(msh, 4),
        receiving_application=present(msh, 5),
        receiving_facility=present(msh, 6),
        structure=present(msh, 9, 3),
        processing_id=present(msh, 11),
        version=present(msh, 12),
        field_separator=separator,
        encoding_characters=encoding,
    )
    if not header.message_type:
        raise MappingError("MSH-9", "required", "the message type (MSH-9) is missing")
    if not header.control_id:
        raise MappingError("MSH-10", "required", "the message control id (MSH-10) is missing")
    return header, message


def _first(message: Any, segment_id: str) -> Any | None:
    return next((s for s in message if str(s[0]) == segment_id), None)


def _mrn(pid: Any) -> str:
    """PID-3.1 of the repetition typed MR (PID-3.5), else of the first repetition with an id."""
    count = len(pid[3]) if len(pid) > 3 else 0
    ids = [(present(pid, 3, 1, r), value(pid, 3, 5, r)) for r in range(1, count + 1)]
    sent = [(mrn, kind) for mrn, kind in ids if mrn]
    if not sent:
        raise MappingError("PID-3", "required", "the patient identifier (PID-3) is missing")
    return next((mrn for mrn, kind in sent if kind == "MR"), sent[0][0])


# --- ADT ------------------------------------------------------------------------------------


def _location(pv1: Any, field_number: int) -> tuple[str | None, str | None, list[str]]:
    """(ward, bed, cleared) of a PL field: ward = .1 point of care, bed = .3 bed."""
    whole_null = pv1 is not None and field_number < len(pv1) and str(pv1[field_number]) == NULL
    values: dict[str, str | None] = {}
    cleared = []
    for name, component in (("ward", 1), ("bed", 3)):
        raw = value(pv1, field_number, component)
        if whole_null or raw == NULL:
            cleared.append(name)
        values[name] = None if whole_null or raw == NULL else raw or None
    return values["ward"], values["bed"], cleared


def _required(given: str | None, location: str, what: str) -> str:
    if not given:
        raise MappingError(location, "required", f"{what} is missing or explicitly empty")
    return given


def _adt(trigger: str, pv1: Any | None) -> InboundItem:
    """The event-specific fields of an ADT item."""
    if pv1 is None and trigger not in ("A04", "A08"):
        raise MappingError("PV1", "segment_sequence", "the message has no PV1 segment")
    encounter = {"encounter_id": present(pv1, 19) or None}
    ward, bed, cleared = _location(pv1, 3)
    if trigger == "A08":
        return {"kind": "PatientUpdated", **encounter, "ward": ward, "bed": bed, "cleared": cleared}
    if trigger == "A04":
        return {"kind": "PatientRegistered", **encounter, "ward": ward}
    ward = _required(ward, "PV1-3", "the assigned ward (PV1-3.1)")
    if trigger in WARD_AND_BED:
        return {"kind": WARD_AND_BED[trigger], **encounter, "ward": ward, "bed": bed}
    if trigger == "A03":
        return {"kind": "PatientDischarged", **encounter, "ward": ward}
    prior_ward, prior_bed, _ = _location(pv1, 6)
    prior_ward = _required(prior_ward, "PV1-6", "the prior ward (PV1-6.1)")
    if trigger == "A02":
        moved = {"from_ward": prior_ward, "from_bed": prior_bed, "ward": ward, "bed": bed}
        return {"kind": "PatientTransferred", **encounter, **moved}
    # A12: back in PV1-3 (the location before the transfer), no longer in PV1-6.
    back = {"ward": ward, "bed": bed, "cancelled_ward": prior_ward, "cancelled_bed": prior_bed}
    return {"kind": "TransferCancelled", **encounter, **back}
