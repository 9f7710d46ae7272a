"""What the HL7 v2 and FHIR mappers produce, and how they fail.

A mapper turns one message into *inbound items*: plain dicts in the same shape a sender would POST
to `/v1/events` (`kind`, `occurred_at`, `patient_id` = the MRN as sent, ...), without `event_id`,
`recorded_at` or `source`. Ingest then gives each a deterministic event id, pseudonymises the
patient, stamps it and validates it against `schemas/`, exactly like native JSON.
"""

from __future__ import annotations

from typing import Any

from schemas.codes import BLOOD_PRESSURE_PANEL, CONSCIOUSNESS_CODES, LOINC_VITAL_SIGNS

__all__ = [
    "ACVPU",
    "BLOOD_PRESSURE_PANEL",
    "CONSCIOUSNESS_CODES",
    "LOINC_PARAMETERS",
    "InboundItem",
    "MappingError",
]

InboundItem = dict[str, Any]

# The vital-sign LOINC codes (shared with cleaning in schemas/codes.py); the panel is handled on
# its own because it carries two values.
LOINC_PARAMETERS: dict[str, str] = {
    code: parameter.value
    for code, parameter in LOINC_VITAL_SIGNS.items()
    if code != BLOOD_PRESSURE_PANEL
}
ACVPU = ("A", "C", "V", "P", "U")


class MappingError(Exception):
    """A message that cannot become canonical events.

    `location` names where: an HL7 position such as `PV1-3` or `OBX[2]-5`, or a FHIR element path
    such as `Observation.valueQuantity.value`. `code` is a short machine-readable reason. The
    message never quotes the offending value (it may be PHI).
    """

    def __init__(self, location: str, code: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.code = code
        self.message = message
