"""ORU^R01 in, VitalSignsObserved items out: the vital-sign OBX mapping of the HL7 v2 layer.

`hl7v2.to_items` routes an ORU^R01 here once MSH and PID are read. Pure: no I/O and no clock.

Data minimisation: only MSH-7, OBR-7 and OBX are read, and no error quotes a value.

Mapping decisions worth knowing:
- Only results with OBX-11 F, C or A count; a known vital sign without OBX-11 is an error.
- The laboratory results of the shared code table (white cell count, arterial PaCO2) are known
  codes, read exactly like vital signs (OBX-6 required), so a lab ORU^R01 carries them too.
- An OBX whose code ingest does not know (a local code, a LOINC code it does not map) is passed on
  as a coded measurement (`code`, `code_system` from OBX-3.3, no `parameter`): cleaning maps it
  with its LOINC table and the operator's local code map. It is passed on only when counted and
  numeric (or a "140/90" ratio) and when its code, system and unit fit the contract; anything else
  (free text, coded answers, a malformed field, no status) is skipped, as before, since it cannot
  be a vital sign and may be free text about the patient.
- One item per OBR group and observation time (OBX-14, else OBR-7, else MSH-7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from services.ingest.hl7_fields import first_timestamp, present, value
from services.ingest.mapping import (
    ACVPU,
    BLOOD_PRESSURE_PANEL,
    CONSCIOUSNESS_CODES,
    LOINC_PARAMETERS,
    InboundItem,
    MappingError,
)

__all__ = ["vital_sign_items"]

COUNTED_STATUSES = frozenset({"F", "C", "A"})  # final, corrected, amended
MAX_MEASUREMENTS = 32  # per item, as VitalSignsObserved.measurements
MAX_CODE, MAX_UNIT, MAX_TEXT = 64, 32, 32  # as Measurement.code / code_system, unit, text
SYSTOLIC, DIASTOLIC = "8480-6", "8462-4"

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_RATIO = re.compile(r"(\d+(?:\.\d*)?)\s*/\s*(\d+(?:\.\d*)?)")


def vital_sign_items(message: Any, patient_id: str, *, tz: tzinfo) -> list[InboundItem]:
    """One VitalSignsObserved per OBR group and observation time (OBX-14, OBR-7, MSH-7).

    `message` is the parsed ORU^R01 (an `hl7.Message`); `tz` is the zone of timestamps sent
    without an offset. Empty when the message carries no counted vital sign.
    """
    msh_time = ("MSH-7", value(message[0], 7))
    obr_time: tuple[str, str] | None = None
    group = obx_count = 0
    observations: dict[tuple[int, datetime], _Observation] = {}
    for segment in message:
        segment_id = str(segment[0])
        if segment_id == "OBR":
            group += 1
            obr_time = (f"OBR[{_set_id(segment, group)}]-7", value(segment, 7))
        if segment_id != "OBX":
            continue
        obx_count += 1
        n = _set_id(segment, obx_count)
        code = _code(segment)
        if code is None:
            _read_coded(segment, group, obr_time, msh_time, tz, observations)
            continue
        status = present(segment, 11)
        if not status:
            raise MappingError(f"OBX[{n}]-11", "required", "the result status is missing")
        if status not in COUNTED_STATUSES:
            continue  # preliminary, cannot be obtained, deleted or entered in error
        times = [(f"OBX[{n}]-14", value(segment, 14)), *filter(None, [obr_time]), msh_time]
        key = (group, first_timestamp(times, tz))
        _read(segment, n, code, observations.setdefault(key, _Observation()))
    return [observation.item(at, patient_id) for (_, at), observation in observations.items()]


@dataclass
class _Observation:
    """The vital signs of one OBR group at one observation time, as they are read."""

    measurements: list[dict[str, Any]] = field(default_factory=list)
    consciousness: str | None = None
    oxygen: list[bool] = field(default_factory=list)  # evidence of supplemental oxygen
    device_id: str | None = None

    def measure(self, location: str, parameter: str, amount: float, unit: str, loinc: str) -> None:
        if any(m["parameter"] == parameter for m in self.measurements):
            raise MappingError(location, "duplicate", "repeats a vital sign of the same time")
        self.measurements.append(
            {"parameter": parameter, "value": amount, "unit": unit, "loinc": loinc}
        )
        if parameter == "oxygen_flow":
            self.oxygen.append(amount > 0)
        elif parameter == "fio2":  # 21 % is room air; a fraction (unit "1") is scaled
            self.oxygen.append((amount if unit == "%" or amount > 1 else amount * 100) > 21)

    def item(self, occurred_at: datetime, patient_id: str) -> InboundItem:
        return {
            "kind": "VitalSignsObserved",
            "occurred_at": occurred_at,
            "patient_id": patient_id,
            "device_id": self.device_id,
            "measurements": self._bounded_measurements(),
            "supplemental_oxygen": any(self.oxygen) if self.oxygen else None,
            "consciousness": self.consciousness,
        }

    def _bounded_measurements(self) -> list[dict[str, Any]]:
        """Every known vital sign, and as many coded measurements as the contract has room for
        (a lab panel under unknown codes must not make the whole message invalid)."""
        room = MAX_MEASUREMENTS - sum(1 for m in self.measurements if m["parameter"] is not None)
        kept = []
        for measurement in self.measurements:
            if measurement["parameter"] is None:
                if room <= 0:
                    continue
                room -= 1
            kept.append(measurement)
        return kept


def _set_id(segment: Any, position: int) -> int:
    """SEG-1 (set id) when it is a positive number, else the segment's 1-based position."""
    raw = value(segment, 1)
    return int(raw) if raw.isdigit() and int(raw) > 0 else position


def _code(obx: Any) -> str | None:
    """The vital-sign code of OBX-3: the identifier (LN or no system), else the alternate (LN)."""
    for code_at, system_at, systems in ((1, 3, ("LN", "")), (4, 6, ("LN",))):
        code, system = value(obx, 3, code_at), value(obx, 3, system_at)
        if code in CONSCIOUSNESS_CODES:
            return code
        if (code in LOINC_PARAMETERS or code == BLOOD_PRESSURE_PANEL) and system in systems:
            return code
    return None


def _read_coded(
    obx: Any,
    group: int,
    obr_time: tuple[str, str] | None,
    msh_time: tuple[str, str],
    tz: tzinfo,
    observations: dict[tuple[int, datetime], _Observation],
) -> None:
    """Pass on an OBX under a code ingest does not know, if it can be a vital sign at all."""
    try:
        if present(obx, 11) not in COUNTED_STATUSES:
            return
        code, system = value(obx, 3, 1), value(obx, 3, 3)
        if not code:
            code, system = value(obx, 3, 4), value(obx, 3, 6)
        unit = present(obx, 6)
        if not code or len(code) > MAX_CODE or len(system) > MAX_CODE or len(unit) > MAX_UNIT:
            return
        values = _numbers(obx, "OBX-5")
        times = [("OBX-14", value(obx, 14)), *filter(None, [obr_time]), msh_time]
        at = first_timestamp(times, tz)
    except MappingError:
        return  # not read before either: an unknown code never refuses a message
    measurement: dict[str, Any] = {"parameter": None, "code": code, "code_system": system or None}
    if len(values) == 1:
        measurement["value"] = values[0]
    else:  # a composite such as a blood pressure: cleaning splits it
        measurement["text"] = "/".join(f"{n:f}".rstrip("0").rstrip(".") for n in values)
        if len(measurement["text"]) > MAX_TEXT:
            return
    measurement["unit"] = unit or None
    observation = observations.setdefault((group, at), _Observation())
    observation.device_id = observation.device_id or present(obx, 18) or None
    observation.measurements.append(measurement)


def _numbers(obx: Any, location: str) -> tuple[float, ...]:
    """OBX-5 as one number, or two for "140/90" (ST/NM) or an SN ratio `^140^/^90`."""
    if not present(obx, 5) and not value(obx, 5, 2):
        raise MappingError(location, "required", "the value (OBX-5) is missing")
    if value(obx, 2) == "SN":
        comparator, first, separator, second = (value(obx, 5, c) for c in (1, 2, 3, 4))
        if comparator in ("", "=") and _NUMBER.fullmatch(first):
            if not separator and not second:
                return (float(first),)
            if separator == "/" and _NUMBER.fullmatch(second):
                return float(first), float(second)
        raise MappingError(location, "data_type", "is not a number")
    raw = value(obx, 5).strip()
    if _NUMBER.fullmatch(raw):
        return (float(raw),)
    if ratio := _RATIO.fullmatch(raw):
        return float(ratio[1]), float(ratio[2])
    raise MappingError(location, "data_type", "is not a number")


def _read(obx: Any, n: int, code: str, observation: _Observation) -> None:
    """Add what one counted OBX says to the observation of its group and time."""
    observation.device_id = observation.device_id or present(obx, 18) or None
    if code in CONSCIOUSNESS_CODES:
        level = present(obx, 5).strip().upper()
        if not level:
            raise MappingError(f"OBX[{n}]-5", "required", "the value (OBX-5) is missing")
        if level not in ACVPU:
            raise MappingError(f"OBX[{n}]-5", "table_value", "is not an ACVPU level")
        if observation.consciousness is not None:
            raise MappingError(f"OBX[{n}]-3", "duplicate", "repeats a vital sign of the same time")
        observation.consciousness = level
        return
    unit = present(obx, 6)
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
