"""What the HL7 v2 and FHIR mappers produce, and how they fail.

A mapper turns one message into *inbound items*: plain dicts in the same shape a sender would POST
to `/v1/events` (`kind`, `occurred_at`, `patient_id` = the MRN as sent, ...), without `event_id`,
`recorded_at` or `source`. Ingest then gives each a deterministic event id, pseudonymises the
patient, stamps it and validates it against `schemas/`, exactly like native JSON.
"""

from __future__ import annotations

from typing import Any

InboundItem = dict[str, Any]

# LOINC codes of the vital signs wardflow reads, shared by the HL7 and FHIR mappers.
LOINC_PARAMETERS: dict[str, str] = {
    "8867-4": "heart_rate",
    "9279-1": "respiratory_rate",
    "2708-6": "spo2",  # oxygen saturation in arterial blood
    "59408-5": "spo2",  # ... by pulse oximetry
    "8480-6": "systolic_bp",
    "8462-4": "diastolic_bp",
    "8310-5": "temperature",
    "3151-8": "oxygen_flow",
    "3150-0": "fio2",
}
BLOOD_PRESSURE_PANEL = "85354-9"
CONSCIOUSNESS_CODES = ("67775-7", "1104441000000107")  # LOINC level of responsiveness; SNOMED ACVPU
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
