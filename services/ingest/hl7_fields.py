"""What the HL7 v2 ADT and ORU mappers share: reading one field of a parsed segment, and reading
HL7 timestamps.

Pure: no I/O, no clock. No error quotes a value (it may be PHI).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from functools import cache
from typing import Any

import hl7

from services.ingest.mapping import MappingError

NULL = '""'  # HL7 explicit null: "delete this value"

_DTM = re.compile(
    r"(\d{4}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?)?)?)([+-]\d{4})?"
)


def value(segment: Any, field_number: int, component: int = 1, repetition: int = 1) -> str:
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


def present(segment: Any, field_number: int, component: int = 1, repetition: int = 1) -> str:
    """Like `value`, but an explicit null counts as not sent."""
    text = value(segment, field_number, component, repetition)
    return "" if text == NULL else text


def first_timestamp(candidates: list[tuple[str, str]], tz: tzinfo) -> datetime:
    """The first sent (and not null) of several timestamp fields, in order of preference.

    Each candidate is (location, raw HL7 DTM); its own offset wins, else `tz` applies.
    """
    for location, raw in candidates:
        if raw and raw != NULL:
            return _timestamp(raw, location, tz)
    names = ", ".join(location for location, _ in candidates)
    raise MappingError(candidates[-1][0], "required", f"no timestamp: {names} are all empty")


@cache
def _escapes(esc: str) -> re.Pattern[str]:
    """Text whose escape sequences (HL7 2.10) are all ones the library unescapes quietly."""
    e = re.escape(esc)
    known = r"[FSTREHN]|X(?:[0-9A-Fa-f]{2})+|\.(?:br|sp|fi|nf|in|ti|sk|ce)(?:[+-]?\d+)?"
    return re.compile(f"(?:[^{e}]|{e}(?:{known}){e})*", re.DOTALL)


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
