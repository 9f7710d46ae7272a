"""HL7 v2 acknowledgements: an original-mode ACK (v2.5 ERR layout) per message, a batch around them.

Pure: `now` is passed in. An ACK uses the delimiters of the message it answers (the standard ones
when that message's MSH could not be read) and escapes every value it echoes. Segments are joined
by CR, without a trailing CR.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import hl7

from services.ingest.mapping import MappingError

if TYPE_CHECKING:
    from services.ingest.hl7v2 import Header

AckCode = Literal["AA", "AE", "AR"]

# MappingError.code -> HL7 table 0357 (message error condition codes).
ERROR_CONDITIONS: dict[str, tuple[str, str]] = {
    "segment_sequence": ("100", "Segment sequence error"),
    "required": ("101", "Required field missing"),
    "data_type": ("102", "Data type error"),
    "encoding": ("102", "Data type error"),
    "table_value": ("103", "Table value not found"),
    "unsupported_message_type": ("200", "Unsupported message type"),
    "unsupported_event": ("201", "Unsupported event code"),
    "unknown_sender": ("204", "Unknown key identifier"),
}
INTERNAL_ERROR = ("207", "Application internal error")
DEFAULT_VERSION = "2.5"
_LOCATION = re.compile(r"([A-Z][A-Z0-9]{2})(?:\[(\d+)\])?(?:-(\d+))?")


def ack(
    header: Header | None,
    code: AckCode,
    *,
    now: datetime,
    error: MappingError | None = None,
    text: str = "",
) -> str:
    """The ACK for a message: MSH (sender and receiver swapped), MSA, and ERR when `error` is set.

    MSA-3 carries `text` (or the error's message) for receivers that predate ERR-8.
    """
    separator = header.field_separator if header else "|"
    encoding = header.encoding_characters[:4] if header else "^~\\&"
    delimiters = hl7.parse(f"MSH{separator}{encoding}{separator}")  # only for escaping
    component = encoding[0]

    def escaped(value: str) -> str:
        return str(delimiters.escape(value)) if value else ""

    control_id = header.control_id if header else ""
    trigger = header.trigger if header else ""
    message_type = f"ACK{component}{escaped(trigger)}{component}ACK" if trigger else "ACK"
    msh = [
        "MSH",
        encoding,
        escaped(header.receiving_application if header else ""),
        escaped(header.receiving_facility if header else ""),
        escaped(header.sending_application if header else ""),
        escaped(header.sending_facility if header else ""),
        _dtm(now),
        "",
        message_type,
        escaped(_ack_control_id(control_id, now)),
        escaped((header.processing_id if header else "") or "P"),
        escaped((header.version if header else "") or DEFAULT_VERSION),
    ]
    message_text = text or (error.message if error else "")
    segments = [msh, ["MSA", code, escaped(control_id), escaped(message_text)]]
    if error is not None:
        number, meaning = ERROR_CONDITIONS.get(error.code, INTERNAL_ERROR)
        condition = component.join([number, meaning, "HL70357"])
        location = _error_location(error.location, component)
        segments.append(["ERR", "", location, condition, "E", "", "", "", escaped(error.message)])
    return "\r".join(separator.join(fields).rstrip(separator) for fields in segments)


def batch_ack(acks: list[str], now: datetime, *, reference_control_id: str = "") -> str:
    """The acknowledgements of a batch: BHS, every ACK's segments, BTS with the ACK count.

    BHS-12 names the acknowledged batch (its BHS-11) when `reference_control_id` is given.
    """
    delimiters = hl7.parse("MSH|^~\\&|")

    def escaped(value: str) -> str:
        return str(delimiters.escape(value)) if value else ""

    batch_id = _ack_control_id(reference_control_id, now)
    header = ["BHS", "^~\\&", "", "", "", "", _dtm(now), "", "", "", escaped(batch_id)]
    header.append(escaped(reference_control_id))
    segments = ["|".join(header).rstrip("|")]
    segments += [s for a in acks for s in a.split("\r") if s]
    segments.append(f"BTS|{len(acks)}")
    return "\r".join(segments)


def _dtm(now: datetime) -> str:
    """HL7 DTM to the second, with the offset when `now` is aware."""
    return now.strftime("%Y%m%d%H%M%S%z")


def _ack_control_id(original: str, now: datetime) -> str:
    """Deterministic: "ACK" + the original id (20 characters at most), else from `now`."""
    return ("ACK" + (original or now.strftime("%y%m%d%H%M%S%f")))[:20]


def _error_location(location: str, component: str) -> str:
    """ERR-2 (ERL) `segment^sequence^field` from a location such as `OBX[2]-5` or `PID-3`."""
    match = _LOCATION.fullmatch(location)
    if match is None:
        return ""
    segment, sequence, field_number = match.groups()
    parts = [segment, sequence or "1", *([field_number] if field_number else [])]
    return component.join(parts)
