"""Cleaning rules: codes to parameters, canonical units, plausibility, artifacts, time, duplicates.

Pure: an event and an explicit `now` in, a `Cleaned` (what to emit and what to count) or a
`CleaningRejection` (what to dead-letter, and why) out. Each value has one of four outcomes:
valid (into `vitals`), artifact (into `artifacts`, never scored), unmapped (its code is in no
table: dropped and counted), impossible (the whole event is refused, so nothing is half-applied).
An event is remembered for duplicate suppression only once it was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from schemas.base import Event, value_class
from schemas.observations import VitalSignsObserved, VitalSignsRecorded
from schemas.vocabulary import VitalParameter
from services.cleaning.artifacts import FlatLineMemory, instant_artifact
from services.cleaning.codes import CodeMap
from services.cleaning.dedupe import DedupeWindow, ReadingWindow
from services.cleaning.measurements import FIELDS, CleaningRejection, Reading, read_measurement
from services.cleaning.recorded import Flags, recorded_document

__all__ = ["Cleaned", "CleaningRejection", "CleaningRules", "EventCleaner"]


@dataclass(frozen=True)
class CleaningRules:
    flat_line_seconds: float = 600.0
    max_clock_skew_seconds: float = 120.0
    state_retention_seconds: float = 86_400.0
    dedupe_window_events: int = 100_000
    flat_line_memory: int = 100_000


DropReason = Literal["event_id", "same_reading", "no_vital_signs"]


@value_class
class Cleaned:
    """The outcome of one accepted event: what goes to events.clean and counts; nothing goes
    when it was `dropped`.

    An event cleaning does not change is `forwarded` as decoded; cleaned vital signs are
    `recorded`, the VitalSignsRecorded document as plain data (`recorded.py`).
    """

    forwarded: Event | None
    dropped: DropReason | None = None
    valid: int = 0
    artifacts: int = 0
    unmapped: int = 0
    late: bool = False
    recorded: dict[str, Any] | None = None

    @property
    def event(self) -> Event | None:
        """What goes to events.clean as a contract model (validates a `recorded` document)."""
        if self.recorded is not None:
            return VitalSignsRecorded.model_validate(self.recorded)
        return self.forwarded


class EventCleaner:
    """Cleans every event of events.raw, with the state cleaning needs (all of it bounded)."""

    def __init__(self, rules: CleaningRules, codes: CodeMap) -> None:
        self.rules = rules
        self.codes = codes
        self.event_ids = DedupeWindow(rules.dedupe_window_events)
        self.readings = ReadingWindow(rules.dedupe_window_events)
        self.flat_lines = FlatLineMemory(rules.flat_line_seconds, rules.flat_line_memory)

    def clean(self, event: Event, now: datetime) -> Cleaned:
        """The cleaned event and its counts; raises CleaningRejection for the dead-letter topic."""
        if self.event_ids.seen(event.event_id):
            return Cleaned(None, dropped="event_id")
        ahead = (event.occurred_at - now).total_seconds()
        if ahead > self.rules.max_clock_skew_seconds:
            raise CleaningRejection(
                "future_event",
                f"occurred_at is {ahead:.0f} s ahead of the clock; "
                f"at most {self.rules.max_clock_skew_seconds:g} s of clock skew is allowed",
            )
        if isinstance(event, VitalSignsObserved):
            cleaned = self._vital_signs(event, late=-ahead > self.rules.state_retention_seconds)
        else:
            cleaned = Cleaned(event)  # ADT, SpO2 scale, care, bed and resource events pass as sent
        self.event_ids.remember(event.event_id)
        return cleaned

    def _vital_signs(self, event: VitalSignsObserved, *, late: bool) -> Cleaned:
        by_parameter: dict[VitalParameter, Reading] = {}
        unmapped = 0
        for measurement in event.measurements:
            parameter = self.codes.resolve(measurement)
            if parameter is None:
                unmapped += 1
                continue
            for reading in read_measurement(measurement, parameter):
                earlier = by_parameter.setdefault(reading.parameter, reading)
                if earlier.value != reading.value:
                    raise CleaningRejection(
                        "conflicting_values",
                        f"{FIELDS[reading.parameter]}: two measurements of the same time disagree",
                    )
        observed: dict[str, Any] = {p: r.value for p, r in by_parameter.items()}
        if event.consciousness is not None:
            observed["consciousness"] = event.consciousness
        if event.supplemental_oxygen is not None:
            observed["supplemental_oxygen"] = event.supplemental_oxygen
        if not observed:
            return Cleaned(None, dropped="no_vital_signs", unmapped=unmapped)
        flags: Flags = {p: instant_artifact(p, r.value) for p, r in by_parameter.items()}
        _check_pressures(by_parameter, flags)
        key = (event.source, event.patient_id, event.device_id, event.occurred_at)
        if self.readings.seen(key, observed):
            return Cleaned(None, dropped="same_reading")
        self.readings.remember(key, observed)
        at = event.occurred_at.timestamp()
        for parameter, reading in by_parameter.items():
            frozen = self.flat_lines.is_flat(event.patient_id, parameter, reading.value, at)
            if frozen and flags[parameter] is None:
                flags[parameter] = "flat_line"
        return Cleaned(
            None,
            recorded=recorded_document(event, by_parameter, flags, late),
            valid=sum(1 for reason in flags.values() if reason is None),
            artifacts=sum(1 for reason in flags.values() if reason is not None),
            unmapped=unmapped,
            late=late,
        )


def _check_pressures(readings: dict[VitalParameter, Reading], flags: Flags) -> None:
    """A diastolic above the systolic is impossible (unless either is a zeroing artifact)."""
    systolic = readings.get(VitalParameter.SYSTOLIC_BP)
    diastolic = readings.get(VitalParameter.DIASTOLIC_BP)
    if (
        systolic is None
        or diastolic is None
        or any(flags[r.parameter] for r in (systolic, diastolic))
    ):
        return
    if diastolic.value > systolic.value:
        raise CleaningRejection(
            "impossible_value",
            f"diastolic_bp_mmhg={diastolic.value:g} is above systolic_bp_mmhg={systolic.value:g}",
        )
