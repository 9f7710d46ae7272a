"""HL7 v2 in, inbound items out: the pure HL7 layer of ingest.

`normalise` -> `split_messages` -> `to_items` (which starts with `parse_header`); `ack` and
`batch_ack` (in `hl7_ack`) answer. Parsing is the `hl7` library's; this module only decides what a
field means to wardflow. Pure: no I/O and no clock; the zone of timestamps sent without an offset
is passed in. Message texts are segments joined by CR, without a trailing CR.

Data minimisation: only MSH, EVN, PID-3, PV1-3/6/19, OBR-7 and OBX are read; names, addresses,
phone numbers and every other demographic are never touched, and no error quotes a value.

Mapping decisions worth knowing:
- MSH-9 decides the event; EVN-1 is ignored even when it disagrees.
- `""` (HL7 explicit null) means "clear": in A08 it names the field in `cleared`; elsewhere a
  required value sent as `""` is missing. A whole PL field sent as `""` clears ward and bed.
- A12 follows HL7 2.5 (3.3.12): PV1-3 "must show the location of the patient prior to the
  original transfer", i.e. where the patient is back (`ward`/`bed`); PV1-6, the prior location,
  carries the cancelled transfer's destination (`cancelled_ward`/`cancelled_bed`).
- ORU^R01: only results with OBX-11 F, C or A count; a known vital sign without OBX-11 is an
  error, an unknown code is skipped. One item per OBR group and observation time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache
from itertools import takewhile
from typing import Any

import hl7

from services.ingest.hl7_ack import ack, batch_ack
from services.ingest.mapping import (
    ACVPU,
    BLOOD_PRESSURE_PANEL,
    CONSCIOUSNESS_CODES,
    LOINC_PARAMETERS,
    InboundItem,
    MappingError,
)

__all__ = ["Header", "ack", "batch_ack", "normalise", "parse_header", "split_messages", "to_items"]

NULL = '""'  # HL7 explicit null: "delete this value"
FRAMING = ("FHS", "BHS", "BTS", "FTS")
# Triggers whose event is just ward + optional bed from PV1-3.
WARD_AND_BED = {
    "A01": "PatientAdmitted",
    "A06": "PatientAdmitted",
    "A11": "AdmissionCancelled",
    "A13": "DischargeCancelled",
}
ADT_TRIGGERS = frozenset({*WARD_AND_BED, "A02", "A03", "A04", "A08", "A12"})
COUNTED_STATUSES = frozenset({"F", "C", "A"})  # final, corrected, amended
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"

_DTM = re.compile(
    r"(\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?)([+-]\d{4})?"
)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_RATIO = re.compile(r"(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)")


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


def to_items(message_text: str, *, tz: tzinfo) -> tuple[Header, list[InboundItem]]:
    """The inbound items one ADT or ORU^R01 message stands for (none for an ORU without vitals)."""
    header, message = _parse(message_text)
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
        return header, _vitals(message, patient_id, tz)
    evn, msh = _first(message, "EVN"), message[0]
    times = [("EVN-6", _value(evn, 6)), ("EVN-2", _value(evn, 2)), ("MSH-7", _value(msh, 7))]
    event = _adt(header.trigger, _first(message, "PV1"))
    return header, [{"occurred_at": _first_timestamp(times, tz), "patient_id": patient_id, **event}]


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
        control_id=_present(msh, 10),
        message_type=_present(msh, 9),
        trigger=_present(msh, 9, 2),
        sending_application=_present(msh, 3),
        sending_facility=_present(msh, 4),
        receiving_application=_present(msh, 5),
        receiving_facility=_present(msh, 6),
        structure=_present(msh, 9, 3),
        processing_id=_present(msh, 11),
        version=_present(msh, 12),
        field_separator=separator,
        encoding_characters=encoding,
    )
    if not header.message_type:
        raise MappingError("MSH-9", "required", "the message type (MSH-9) is missing")
    if not header.control_id:
        raise MappingError("MSH-10", "required", "the message control id (MSH-10) is missing")
    return header, message


def _value(segment: Any, field_number: int, component: int = 1, repetition: int = 1) -> str:
    """SEG-field.component of one repetition, unescaped; "" when absent (or no segment).

    A field with a malformed escape sequence is refused before the library unescapes it: the
    library would log the value (PHI) and call the deprecated `Logger.warn`.
    """
    if segment is None or field_number >= len(segment):
        return ""
    raw = str(segment[field_number])
    if segment.esc in raw and not _escapes(segment.esc).fullmatch(raw):
        set_id = str(segment[1]) if len(segment) > 1 else ""
        numbered = str(segment[0]) in ("OBR", "OBX") and set_id.isdigit()
        label = f"{segment[0]}[{set_id}]" if numbered else str(segment[0])
        raise MappingError(f"{label}-{field_number}", "encoding", "malformed escape sequence")
    try:
        return str(segment.extract_field(1, field_number, repetition, component, 1))
    except IndexError:  # the library's way of saying "not sent"
        return ""


def _present(segment: Any, field_number: int, component: int = 1, repetition: int = 1) -> str:
    """Like `_value`, but an explicit null counts as not sent."""
    value = _value(segment, field_number, component, repetition)
    return "" if value == NULL else value


@cache
def _escapes(esc: str) -> re.Pattern[str]:
    """Text whose escape sequences (HL7 2.10) are all ones the library unescapes quietly."""
    e = re.escape(esc)
    known = r"[FSTREHN]|X(?:[0-9A-Fa-f]{2})+|\.(?:br|sp|fi|nf|in|ti|sk|ce)(?:[+-]?\d+)?"
    return re.compile(f"(?:[^{e}]|{e}(?:{known}){e})*", re.DOTALL)


def _first(message: Any, segment_id: str) -> Any | None:
    return next((s for s in message if str(s[0]) == segment_id), None)


def _set_id(segment: Any, position: int) -> int:
    """SEG-1 (set id) when it is a positive number, else the segment's 1-based position."""
    raw = _value(segment, 1)
    return int(raw) if raw.isdigit() and int(raw) > 0 else position


def _mrn(pid: Any) -> str:
    """PID-3.1 of the repetition typed MR (PID-3.5), else of the first repetition with an id."""
    count = len(pid[3]) if len(pid) > 3 else 0
    ids = [(_present(pid, 3, 1, r), _value(pid, 3, 5, r)) for r in range(1, count + 1)]
    sent = [(mrn, kind) for mrn, kind in ids if mrn]
    if not sent:
        raise MappingError("PID-3", "required", "the patient identifier (PID-3) is missing")
    return next((mrn for mrn, kind in sent if kind == "MR"), sent[0][0])


def _timestamp(raw: str, location: str, tz: tzinfo) -> datetime:
    """An HL7 DTM; its own offset wins, else `tz` applies."""
    match = _DTM.fullmatch(raw.strip())
    try:
        if match is None:
            raise ValueError
        local = hl7.parse_datetime(match[1])  # naive: the offset is read below
        offset = match[2]
        if offset is None:
            return local.replace(tzinfo=tz)
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if minutes >= 60:
            raise ValueError
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return local.replace(tzinfo=zone)
    except ValueError:
        raise MappingError(location, "data_type", "not an HL7 timestamp") from None


def _first_timestamp(candidates: list[tuple[str, str]], tz: tzinfo) -> datetime:
    """The first sent (and not null) of several timestamp fields, in order of preference."""
    for location, raw in candidates:
        if raw and raw != NULL:
            return _timestamp(raw, location, tz)
    names = ", ".join(location for location, _ in candidates)
    raise MappingError(candidates[-1][0], "required", f"no timestamp: {names} are all empty")


# --- ADT ------------------------------------------------------------------------------------


def _location(pv1: Any, field_number: int) -> tuple[str | None, str | None, list[str]]:
    """(ward, bed, cleared) of a PL field: ward = .1 point of care, bed = .3 bed."""
    whole_null = pv1 is not None and field_number < len(pv1) and str(pv1[field_number]) == NULL
    values: dict[str, str | None] = {}
    cleared = []
    for name, component in (("ward", 1), ("bed", 3)):
        raw = _value(pv1, field_number, component)
        if whole_null or raw == NULL:
            cleared.append(name)
        values[name] = None if whole_null or raw == NULL else raw or None
    return values["ward"], values["bed"], cleared


def _required(value: str | None, location: str, what: str) -> str:
    if not value:
        raise MappingError(location, "required", f"{what} is missing or explicitly empty")
    return value


def _adt(trigger: str, pv1: Any | None) -> InboundItem:
    """The event-specific fields of an ADT item."""
    if pv1 is None and trigger not in ("A04", "A08"):
        raise MappingError("PV1", "segment_sequence", "the message has no PV1 segment")
    encounter = {"encounter_id": _present(pv1, 19) or None}
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


# --- ORU^R01 --------------------------------------------------------------------------------


@dataclass
class _Observation:
    """The vital signs of one OBR group at one observation time, as they are read."""

    measurements: list[dict[str, Any]] = field(default_factory=list)
    consciousness: str | None = None
    oxygen: list[bool] = field(default_factory=list)  # evidence of supplemental oxygen
    device_id: str | None = None

    def measure(self, location: str, parameter: str, value: float, unit: str, loinc: str) -> None:
        if any(m["parameter"] == parameter for m in self.measurements):
            raise MappingError(location, "duplicate", "repeats a vital sign of the same time")
        self.measurements.append(
            {"parameter": parameter, "value": value, "unit": unit, "loinc": loinc}
        )
        if parameter == "oxygen_flow":
            self.oxygen.append(value > 0)
        elif parameter == "fio2":  # 21 % is room air; a fraction (unit "1") is scaled
            self.oxygen.append((value if unit == "%" or value > 1 else value * 100) > 21)

    def item(self, occurred_at: datetime, patient_id: str) -> InboundItem:
        return {
            "kind": "VitalSignsObserved",
            "occurred_at": occurred_at,
            "patient_id": patient_id,
            "device_id": self.device_id,
            "measurements": self.measurements,
            "supplemental_oxygen": any(self.oxygen) if self.oxygen else None,
            "consciousness": self.consciousness,
        }


def _code(obx: Any) -> str | None:
    """The vital-sign code of OBX-3: the identifier (LN or no system), else the alternate (LN)."""
    for code_at, system_at, systems in ((1, 3, ("LN", "")), (4, 6, ("LN",))):
        code, system = _value(obx, 3, code_at), _value(obx, 3, system_at)
        if code in CONSCIOUSNESS_CODES:
            return code
        if (code in LOINC_PARAMETERS or code == BLOOD_PRESSURE_PANEL) and system in systems:
            return code
    return None


def _numbers(obx: Any, location: str) -> tuple[float, ...]:
    """OBX-5 as one number, or two for "140/90" (ST/NM) or an SN ratio `^140^/^90`."""
    if not _present(obx, 5) and not _value(obx, 5, 2):
        raise MappingError(location, "required", "the value (OBX-5) is missing")
    if _value(obx, 2) == "SN":
        comparator, first, separator, second = (_value(obx, 5, c) for c in (1, 2, 3, 4))
        if comparator in ("", "=") and _NUMBER.fullmatch(first):
            if not separator and not second:
                return (float(first),)
            if separator == "/" and _NUMBER.fullmatch(second):
                return float(first), float(second)
        raise MappingError(location, "data_type", "is not a number")
    raw = _value(obx, 5).strip()
    if _NUMBER.fullmatch(raw):
        return (float(raw),)
    if ratio := _RATIO.fullmatch(raw):
        return float(ratio[1]), float(ratio[2])
    raise MappingError(location, "data_type", "is not a number")


def _read(obx: Any, n: int, code: str, observation: _Observation) -> None:
    """Add what one counted OBX says to the observation of its group and time."""
    observation.device_id = observation.device_id or _present(obx, 18) or None
    if code in CONSCIOUSNESS_CODES:
        level = _present(obx, 5).strip().upper()
        if not level:
            raise MappingError(f"OBX[{n}]-5", "required", "the value (OBX-5) is missing")
        if level not in ACVPU:
            raise MappingError(f"OBX[{n}]-5", "table_value", "is not an ACVPU level")
        if observation.consciousness is not None:
            raise MappingError(f"OBX[{n}]-3", "duplicate", "repeats a vital sign of the same time")
        observation.consciousness = level
        return
    unit = _present(obx, 6)
    if not unit:
        raise MappingError(f"OBX[{n}]-6", "required", "the unit (OBX-6.1) is missing")
    values = _numbers(obx, f"OBX[{n}]-5")
    if code in (BLOOD_PRESSURE_PANEL, SYSTOLIC) and len(values) == 2:
        observation.measure(f"OBX[{n}]-3", "systolic_bp", values[0], unit, SYSTOLIC)
        observation.measure(f"OBX[{n}]-3", "diastolic_bp", values[1], unit, DIASTOLIC)
    elif code != BLOOD_PRESSURE_PANEL and len(values) == 1:
        observation.measure(f"OBX[{n}]-3", LOINC_PARAMETERS[code], values[0], unit, code)
    else:
        raise MappingError(f"OBX[{n}]-5", "data_type", "is not a number")


def _vitals(message: Any, patient_id: str, tz: tzinfo) -> list[InboundItem]:
    """One VitalSignsObserved per OBR group and observation time (OBX-14, OBR-7, MSH-7)."""
    msh_time = ("MSH-7", _value(message[0], 7))
    obr_time: tuple[str, str] | None = None
    group = obx_count = 0
    observations: dict[tuple[int, datetime], _Observation] = {}
    for segment in message:
        segment_id = str(segment[0])
        if segment_id == "OBR":
            group += 1
            obr_time = (f"OBR[{_set_id(segment, group)}]-7", _value(segment, 7))
        if segment_id != "OBX":
            continue
        obx_count += 1
        n = _set_id(segment, obx_count)
        code = _code(segment)
        if code is None:
            continue  # not a vital sign wardflow reads
        status = _present(segment, 11)
        if not status:
            raise MappingError(f"OBX[{n}]-11", "required", "the result status is missing")
        if status not in COUNTED_STATUSES:
            continue  # preliminary, cannot be obtained, deleted or entered in error
        times = [(f"OBX[{n}]-14", _value(segment, 14)), *filter(None, [obr_time]), msh_time]
        key = (group, _first_timestamp(times, tz))
        _read(segment, n, code, observations.setdefault(key, _Observation()))
    return [observation.item(at, patient_id) for (_, at), observation in observations.items()]
