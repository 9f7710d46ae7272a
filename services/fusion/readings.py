"""Readings: the latest valid value per parameter, a thinned last hour of it, and staleness.

Pure; `now` and the maximum ages are passed in. The rules:

- **Latest by event time.** A value replaces the stored one only if its observation is newer,
  comparing `(observed_at, event_id)` so two observations at the same instant resolve the same
  way whatever their arrival order. A late event (`late=True`) follows the same rule: it may fill a
  parameter that has no newer value, never overwrite one.
- **Never from artifacts.** Only `vitals` is read; a parameter the event also flags in `artifacts`
  is skipped, in case a sender or cleaning ever put it in both.
- **Supplemental oxygen** comes from `on_supplemental_oxygen`, `oxygen_flow_l_per_min` (> 0 means
  on oxygen) and `fio2_percent` (> 21 means on oxygen). Any one of them saying "oxygen" wins: the
  conservative reading for NEWS2, which scores oxygen 2 points.
- **Trend.** Each numeric parameter keeps a history of `(epoch second, value)` points covering the
  last hour before its latest observation, thinned to the earliest point of each 5-minute bucket
  (at most 14 points). `change_1h` is the latest value minus the oldest point no more than an hour
  older than it, so it spans between 55 and 60 minutes; None when there is no older point.
  Which points are kept depends only on the set of observations, not on their arrival order.
- **Staleness.** A reading is stale when, at the snapshot's time, it is older than its
  parameter's maximum age. It is still shown, marked `stale`, never silently used as current.
- **Laboratory results** (white cell count, arterial PaCO2) are numeric readings like any other:
  the latest by event time, with a trend. They are taken rarely, so they stay fresh longer: 24 h
  for the white cell count, 6 h for PaCO2 (a blood gas is repeated more often when it matters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from schemas.base import Contract, UtcDatetime, evolve, value_class
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
)
from schemas.vocabulary import Consciousness, VitalParameter
from services.fusion.reader import Vitals

NUMERIC_FIELDS = (
    "heart_rate_bpm",
    "respiratory_rate_per_min",
    "spo2_percent",
    "systolic_bp_mmhg",
    "diastolic_bp_mmhg",
    "temperature_celsius",
    "oxygen_flow_l_per_min",
    "fio2_percent",
    "white_cell_count_10e9_per_l",
    "paco2_mmhg",
)
PARAMETERS = (*NUMERIC_FIELDS, "supplemental_oxygen", "consciousness")
"""Every parameter fusion keeps, named as the `PatientReadings` fields."""

CONTINUOUS_MAX_AGE_SECONDS = 900.0
SPOT_CHECK_MAX_AGE_SECONDS = 43_200.0
LABORATORY_MAX_AGE_SECONDS: dict[str, float] = {
    "white_cell_count_10e9_per_l": 86_400.0,
    "paco2_mmhg": 21_600.0,
}
DEFAULT_MAX_AGE_SECONDS: dict[str, float] = {
    parameter: CONTINUOUS_MAX_AGE_SECONDS
    if parameter in ("heart_rate_bpm", "respiratory_rate_per_min", "spo2_percent")
    else LABORATORY_MAX_AGE_SECONDS.get(parameter, SPOT_CHECK_MAX_AGE_SECONDS)
    for parameter in PARAMETERS
}
"""Continuously monitored parameters go stale after 15 minutes, spot checks after 12 hours, the
white cell count after 24 hours and PaCO2 after 6 hours."""

TREND_WINDOW_SECONDS = 3600
TREND_BUCKET_SECONDS = 300

_FIELDS_OF: dict[VitalParameter, tuple[str, ...]] = {
    VitalParameter.HEART_RATE: ("heart_rate_bpm",),
    VitalParameter.RESPIRATORY_RATE: ("respiratory_rate_per_min",),
    VitalParameter.SPO2: ("spo2_percent",),
    VitalParameter.SYSTOLIC_BP: ("systolic_bp_mmhg",),
    VitalParameter.DIASTOLIC_BP: ("diastolic_bp_mmhg",),
    VitalParameter.TEMPERATURE: ("temperature_celsius",),
    VitalParameter.OXYGEN_FLOW: ("oxygen_flow_l_per_min",),
    VitalParameter.FIO2: ("fio2_percent",),
    VitalParameter.WHITE_CELL_COUNT: ("white_cell_count_10e9_per_l",),
    VitalParameter.PACO2: ("paco2_mmhg",),
    VitalParameter.BLOOD_PRESSURE: ("systolic_bp_mmhg", "diastolic_bp_mmhg"),
}

Point = tuple[int, float]


@value_class(kw_only=True)
class Observed:
    """When, by which source and in which event a reading was observed.

    The tracks are plain frozen dataclasses, not pydantic models: one is made for every reading
    of every event, from values already validated (the event's), and a model's construction or
    copy cost several times more. Pydantic still validates them where the record is read back
    from the changelog (they are fields of `Observations`)."""

    at: UtcDatetime
    source: str
    event_id: str

    def is_newer_than(self, other: Observed | None) -> bool:
        return other is None or (self.at, self.event_id) > (other.at, other.event_id)


@value_class(kw_only=True)
class NumericTrack(Observed):
    value: float
    history: tuple[Point, ...] = ()


@value_class(kw_only=True)
class OxygenTrack(Observed):
    on_oxygen: bool


@value_class(kw_only=True)
class ConsciousnessTrack(Observed):
    level: Consciousness


class Observations(Contract):
    """Everything fusion keeps about a patient's readings (part of the table value)."""

    numeric: dict[str, NumericTrack] = {}
    oxygen: OxygenTrack | None = None
    consciousness: ConsciousnessTrack | None = None

    def tracks(self) -> dict[str, Observed]:
        """Every present reading by parameter name."""
        tracks: dict[str, Observed] = dict(self.numeric)
        if self.oxygen is not None:
            tracks["supplemental_oxygen"] = self.oxygen
        if self.consciousness is not None:
            tracks["consciousness"] = self.consciousness
        return tracks


def _bucket(second: int) -> int:
    return second // TREND_BUCKET_SECONDS


def add_point(history: tuple[Point, ...], latest_second: int, point: Point) -> tuple[Point, ...]:
    """The history with `point` added, thinned and cut to the window before `latest_second`."""
    first_bucket = _bucket(latest_second - TREND_WINDOW_SECONDS)
    if history and point >= history[-1]:  # the usual case, in order: no rebuild
        return _add_latest(history, first_bucket, point)
    kept = {_bucket(p[0]): p for p in history if _bucket(p[0]) >= first_bucket}
    bucket = _bucket(point[0])
    if bucket >= first_bucket and (bucket not in kept or point < kept[bucket]):
        kept[bucket] = point
    return tuple(sorted(kept.values()))


def _add_latest(history: tuple[Point, ...], first_bucket: int, point: Point) -> tuple[Point, ...]:
    """`add_point` for a point not earlier than any in the history (which is sorted, one point
    per bucket): the same result without rebuilding the history."""
    start = 0
    while start < len(history) and _bucket(history[start][0]) < first_bucket:
        start += 1
    kept = history[start:] if start else history
    bucket = _bucket(point[0])
    if bucket < first_bucket:
        return kept
    if kept and _bucket(kept[-1][0]) == bucket:
        return kept  # the bucket keeps its earliest point, which is not later than this one
    return (*kept, point)


def change_1h(track: NumericTrack) -> float | None:
    latest_second = int(track.at.timestamp())
    start = latest_second - TREND_WINDOW_SECONDS
    for second, value in track.history:
        if second >= start:
            return round(track.value - value, 3) if second < latest_second else None
    return None


def _flagged_fields(event: Vitals) -> set[str]:
    return {field for flag in event.artifacts for field in _FIELDS_OF.get(flag.parameter, ())}


def _oxygen_evidence(event: Vitals, flagged: set[str]) -> bool | None:
    vitals = event.vitals
    evidence: list[bool] = []
    if vitals.on_supplemental_oxygen is not None:
        evidence.append(vitals.on_supplemental_oxygen)
    if vitals.oxygen_flow_l_per_min is not None and "oxygen_flow_l_per_min" not in flagged:
        evidence.append(vitals.oxygen_flow_l_per_min > 0)
    if vitals.fio2_percent is not None and "fio2_percent" not in flagged:
        evidence.append(vitals.fio2_percent > 21)
    return any(evidence) if evidence else None


def _track(observed: Observed, value: float, history: tuple[Point, ...]) -> NumericTrack:
    return NumericTrack(
        at=observed.at,
        source=observed.source,
        event_id=observed.event_id,
        value=value,
        history=history,
    )


def _numeric(
    track: NumericTrack | None, observed: Observed, second: int, value: float
) -> NumericTrack:
    """The track with the reading observed at `second` (its epoch second) merged in."""
    if track is None:
        return _track(observed, value, ((second, value),))
    history = track.history
    newer = observed.is_newer_than(track)
    if (
        newer
        and history
        and second > history[-1][0]
        and _bucket(second) == _bucket(history[-1][0])
        and _bucket(history[0][0]) >= _bucket(second - TREND_WINDOW_SECONDS)
    ):  # the usual case: a later reading in the latest point's bucket, nothing leaves the window
        return _track(observed, value, history)
    newest = observed if newer else track
    history = add_point(history, int(newest.at.timestamp()), (second, value))
    if newest is track:
        return track if history == track.history else replace(track, history=history)
    return _track(observed, value, history)


def _stamp(observed: Observed) -> dict[str, Any]:
    return {"at": observed.at, "source": observed.source, "event_id": observed.event_id}


def observe(observations: Observations, event: Vitals) -> Observations:
    """The observations with the event's valid values merged in; the same object if unchanged."""
    observed = Observed(at=event.occurred_at, source=event.source, event_id=str(event.event_id))
    second = int(event.occurred_at.timestamp())
    flagged = _flagged_fields(event) if event.artifacts else set()
    numeric = dict(observations.numeric)
    changed = False
    for field in NUMERIC_FIELDS:
        value = getattr(event.vitals, field)
        if value is not None and field not in flagged:
            track = numeric.get(field)
            numeric[field] = merged = _numeric(track, observed, second, float(value))
            changed = changed or merged is not track
    update: dict[str, object] = {}
    if changed:
        update["numeric"] = numeric
    on_oxygen = _oxygen_evidence(event, flagged)
    if on_oxygen is not None and observed.is_newer_than(observations.oxygen):
        update["oxygen"] = OxygenTrack(**_stamp(observed), on_oxygen=on_oxygen)
    level = event.vitals.consciousness
    if level is not None and observed.is_newer_than(observations.consciousness):
        update["consciousness"] = ConsciousnessTrack(**_stamp(observed), level=level)
    return evolve(observations, **update) if update else observations


def is_stale(
    observed: Observed, parameter: str, now: datetime, max_ages: Mapping[str, float]
) -> bool:
    return (now - observed.at).total_seconds() > max_ages[parameter]


def readings(
    observations: Observations, now: datetime, max_ages: Mapping[str, float]
) -> PatientReadings:
    """The readings as a snapshot shows them at `now`: stale ones marked, trends computed."""
    fields: dict[str, object] = {}
    for field, track in observations.numeric.items():
        fields[field] = NumericReading(
            value=track.value,
            observed_at=track.at,
            source=track.source,
            stale=is_stale(track, field, now, max_ages),
            change_1h=change_1h(track),
        )
    if (oxygen := observations.oxygen) is not None:
        fields["supplemental_oxygen"] = OxygenReading(
            on_supplemental_oxygen=oxygen.on_oxygen,
            observed_at=oxygen.at,
            source=oxygen.source,
            stale=is_stale(oxygen, "supplemental_oxygen", now, max_ages),
        )
    if (level := observations.consciousness) is not None:
        fields["consciousness"] = ConsciousnessReading(
            level=level.level,
            observed_at=level.at,
            source=level.source,
            stale=is_stale(level, "consciousness", now, max_ages),
        )
    return PatientReadings.model_validate(fields)
