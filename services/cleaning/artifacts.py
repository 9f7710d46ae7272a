"""Artifacts: values a living patient can show but that are almost certainly a sensor fault.

An artifact is kept in `VitalSignsRecorded.artifacts`, flagged with why, and never used as a vital
sign. Pure: time is the event's own, passed in as seconds.
"""

from __future__ import annotations

from collections import OrderedDict

from schemas.observations import ArtifactReason
from schemas.vocabulary import VitalParameter

INSTANT_ARTIFACTS: dict[VitalParameter, ArtifactReason] = {
    VitalParameter.HEART_RATE: "probe_off",  # 0 /min: a detached lead or probe
    VitalParameter.SPO2: "probe_off",  # 0 %: a detached finger probe
    VitalParameter.SYSTOLIC_BP: "zeroing",  # 0 mmHg: an arterial line open to air while zeroed
    VitalParameter.DIASTOLIC_BP: "zeroing",
}
"""Parameters whose value of exactly 0 is an artifact, and which one."""

FLAT_LINE_PARAMETERS = frozenset(
    {
        VitalParameter.HEART_RATE,
        VitalParameter.RESPIRATORY_RATE,
        VitalParameter.SYSTOLIC_BP,
        VitalParameter.DIASTOLIC_BP,
    }
)
"""Parameters a monitor measures continuously, so that an unchanged value means a frozen sensor.

Not SpO2 (it sits at 100 % on oxygen, in whole percent), temperature (changes slowly, in tenths),
nor oxygen flow and FiO2 (settings, constant by design). No artifact rule applies to laboratory
results (white cell count, PaCO2): they are measured on a sample, not by a sensor on the patient."""


def instant_artifact(parameter: VitalParameter, value: float) -> ArtifactReason | None:
    """The artifact a single value is by itself (a 0 from a detached probe), or None."""
    return INSTANT_ARTIFACTS.get(parameter) if value == 0.0 else None


class _Run:
    __slots__ = ("last", "since", "value")

    def __init__(self, value: float, at: float) -> None:
        self.value, self.since, self.last = value, at, at


class FlatLineMemory:
    """Per (patient, parameter): how long the same value has been repeated, in event time.

    A value is a flat line when it has been repeated unchanged for longer than
    `threshold_seconds`, every reading of the run less than `threshold_seconds` after the one
    before (a value that comes back after a gap is a new reading, not a frozen one). A reading
    older than the latest of its run neither extends nor breaks it. Bounded: the least recently
    seen (patient, parameter) is forgotten beyond `capacity`. `threshold_seconds` 0 disables it.
    """

    def __init__(self, threshold_seconds: float, capacity: int) -> None:
        self.threshold_seconds = threshold_seconds
        self.capacity = capacity
        self._runs: OrderedDict[tuple[str, VitalParameter], _Run] = OrderedDict()

    def is_flat(self, patient: str, parameter: VitalParameter, value: float, at: float) -> bool:
        """Record a reading at `at` (epoch seconds) and say whether it continues a flat line."""
        if not self.threshold_seconds or parameter not in FLAT_LINE_PARAMETERS:
            return False
        key = (patient, parameter)
        run = self._runs.get(key)
        if run is None:
            self._runs[key] = _Run(value, at)
            if len(self._runs) > self.capacity:
                self._runs.popitem(last=False)
            return False
        self._runs.move_to_end(key)
        if at < run.last:
            return False
        if value != run.value or at - run.last > self.threshold_seconds:
            run.value, run.since, run.last = value, at, at
            return False
        run.last = at
        return at - run.since > self.threshold_seconds

    def __len__(self) -> int:
        return len(self._runs)
