"""The VitalSignsRecorded record that cleaning writes, built as plain data and encoded directly.

Validating a freshly built `VitalSignsRecorded` and serialising it again cost about 30 % of
cleaning's CPU per event (bench/README.md), for values the rules had just produced from a
validated event. So cleaning writes the document itself, in the model's field order, and
`encode_document` gives the bytes `schemas.codec.encode(VitalSignsRecorded(...))` would: the
unit tests check that byte for byte over every rule's output, and every consumer still validates
the record against the contract when it decodes it (a bad one would be dead-lettered there).
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.observations import (
    ArtifactReason,
    VitalSigns,
    VitalSignsObserved,
    VitalSignsRecorded,
)
from schemas.vocabulary import VitalParameter
from services.cleaning.measurements import FIELDS, Reading
from services.cleaning.units import CANONICAL_UNIT

KIND = VitalSignsRecorded.model_fields["kind"].default
_NO_VITALS = dict.fromkeys(VitalSigns.model_fields)  # every field, None until measured
Flags = dict[VitalParameter, ArtifactReason | None]
"""The artifact reason of each reading; None: a valid value."""


def recorded_document(
    event: VitalSignsObserved, readings: dict[VitalParameter, Reading], flags: Flags, late: bool
) -> dict[str, Any]:
    """The events.clean document of an observation: valid values in `vitals`, artifacts
    flagged with their reason, the origin of every reading."""
    vitals = dict(_NO_VITALS)
    for parameter, reading in readings.items():
        if flags[parameter] is None:
            vitals[FIELDS[parameter]] = reading.value
    vitals["on_supplemental_oxygen"] = event.supplemental_oxygen
    vitals["consciousness"] = event.consciousness
    return {
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "source": event.source,
        "schema_version": event.schema_version,
        "kind": KIND,
        "patient_id": event.patient_id,
        "device_id": event.device_id,
        "vitals": vitals,
        "origins": [reading.origin for reading in readings.values()],
        "artifacts": [
            {"parameter": p, "value": r.value, "unit": CANONICAL_UNIT[p], "reason": flags[p]}
            for p, r in readings.items()
            if flags[p] is not None
        ],
        "late": late,
    }


def encode_document(document: dict[str, Any]) -> bytes:
    """The record value: compact JSON as pydantic writes it (UTC as `Z`, enums by value)."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)
