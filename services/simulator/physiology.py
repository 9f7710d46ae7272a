"""Simulated physiology: a patient's baseline, the course of an illness and noisy monitor readings.

Pure: values come from the `random.Random` passed in and from a `severity` between 0 (the
patient's baseline) and 1 (very unwell: NEWS2 high). A course maps simulated time to severity.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.vocabulary import Consciousness, VitalParameter

HOUR_SECONDS = 3600.0

UNITS: dict[VitalParameter, tuple[str, str]] = {
    VitalParameter.HEART_RATE: ("/min", "8867-4"),
    VitalParameter.RESPIRATORY_RATE: ("/min", "9279-1"),
    VitalParameter.SPO2: ("%", "59408-5"),
    VitalParameter.SYSTOLIC_BP: ("mm[Hg]", "8480-6"),
    VitalParameter.DIASTOLIC_BP: ("mm[Hg]", "8462-4"),
    VitalParameter.TEMPERATURE: ("Cel", "8310-5"),
}
"""Parameter -> (UCUM unit, LOINC code) as a standard monitor sends it."""

IMPOSSIBLE: dict[VitalParameter, float] = {
    VitalParameter.HEART_RATE: 400,
    VitalParameter.RESPIRATORY_RATE: 150,
    VitalParameter.SPO2: 130,
    VitalParameter.SYSTOLIC_BP: 420,
}
"""Values no living patient shows, as a loose lead or a mis-mapped field produces them."""


def _clip(value: float, lowest: float, highest: float) -> float:
    return max(lowest, min(highest, value))


@dataclass(frozen=True)
class Baseline:
    """A patient's usual vital signs when well."""

    heart_rate_bpm: float
    respiratory_rate_per_min: float
    spo2_percent: float
    systolic_bp_mmhg: float
    diastolic_bp_mmhg: float
    temperature_celsius: float


def draw_baseline(rng: random.Random) -> Baseline:
    systolic = _clip(rng.gauss(126, 12), 114, 165)
    return Baseline(
        heart_rate_bpm=_clip(rng.gauss(74, 8), 55, 86),
        respiratory_rate_per_min=rng.uniform(13, 17),
        spo2_percent=rng.uniform(96.5, 99),
        systolic_bp_mmhg=systolic,
        diastolic_bp_mmhg=systolic * rng.uniform(0.58, 0.68),
        temperature_celsius=_clip(rng.gauss(36.8, 0.2), 36.4, 37.3),
    )


@dataclass(frozen=True)
class Course:
    """How severity evolves: 0 until `onset`, rising to `peak` over `ramp`, held, maybe recovering.

    A stable patient has no onset. A patient who does not recover leaves (dies or is moved to
    another hospital) at the end of the hold; `settled` is when the course is over either way.
    """

    onset: datetime | None = None
    peak: float = 1.0
    ramp: timedelta = timedelta(0)
    hold: timedelta = timedelta(0)
    recovery: timedelta | None = None

    def severity(self, at: datetime) -> float:
        if self.onset is None or at <= self.onset:
            return 0.0
        elapsed = at - self.onset
        if elapsed < self.ramp:
            return self.peak * (elapsed / self.ramp)
        if self.recovery is None or elapsed < self.ramp + self.hold:
            return self.peak
        recovered = (elapsed - self.ramp - self.hold) / self.recovery
        return self.peak * _clip(1.0 - recovered, 0.0, 1.0)

    def reaches(self, level: float) -> datetime | None:
        """When severity first reaches `level` (above 0), or None if it never does."""
        if self.onset is None or level > self.peak:
            return None
        return self.onset + self.ramp * (level / self.peak)

    @property
    def settled(self) -> datetime | None:
        if self.onset is None:
            return None
        return self.onset + self.ramp + self.hold + (self.recovery or timedelta(0))

    @property
    def recovered(self) -> datetime | None:
        """When a recovering patient is back to baseline; None if stable or not recovering."""
        return None if self.recovery is None else self.settled


def draw_course(
    rng: random.Random, start: datetime, deteriorating_fraction: float, recovering_fraction: float
) -> Course:
    """A course for a patient seen from `start`: stable, or deteriorating at some point after it."""
    if rng.random() >= deteriorating_fraction:
        return Course()
    return Course(
        onset=start + timedelta(hours=rng.uniform(0.5, 6)),
        peak=rng.uniform(0.45, 1.0),
        ramp=timedelta(hours=rng.uniform(2, 6)),
        hold=timedelta(hours=rng.uniform(1, 4)),
        recovery=timedelta(hours=rng.uniform(3, 8)) if rng.random() < recovering_fraction else None,
    )


@dataclass(frozen=True)
class Reading:
    """One set of observations, rounded as a monitor displays them."""

    heart_rate_bpm: int
    respiratory_rate_per_min: int
    spo2_percent: int
    systolic_bp_mmhg: int
    diastolic_bp_mmhg: int
    temperature_celsius: float
    supplemental_oxygen: bool
    consciousness: Consciousness


def observe(baseline: Baseline, severity: float, rng: random.Random) -> Reading:
    """Vital signs at a severity: faster pulse and breath, lower SpO2 and BP, fever, confusion."""
    s = severity
    on_oxygen = s >= 0.45
    systolic = round(_clip(baseline.systolic_bp_mmhg - 42 * s + rng.gauss(0, 4), 60, 220))
    diastolic = round(_clip(baseline.diastolic_bp_mmhg - 22 * s + rng.gauss(0, 3), 35, 130))
    spo2 = baseline.spo2_percent - 11 * s + (3 if on_oxygen else 0) + rng.gauss(0, 0.7)
    if s >= 0.95:
        consciousness = Consciousness.VOICE
    elif s >= 0.8:
        consciousness = Consciousness.NEW_CONFUSION
    else:
        consciousness = Consciousness.ALERT
    return Reading(
        heart_rate_bpm=round(_clip(baseline.heart_rate_bpm + 55 * s + rng.gauss(0, 3), 35, 190)),
        respiratory_rate_per_min=round(
            _clip(baseline.respiratory_rate_per_min + 15 * s + rng.gauss(0, 1), 6, 45)
        ),
        spo2_percent=round(_clip(spo2, 70, 100)),
        systolic_bp_mmhg=systolic,
        diastolic_bp_mmhg=min(diastolic, systolic - 15),
        temperature_celsius=round(
            _clip(baseline.temperature_celsius + 2.4 * s + rng.gauss(0, 0.12), 34.5, 41.5), 1
        ),
        supplemental_oxygen=on_oxygen,
        consciousness=consciousness,
    )


def measurements(reading: Reading, *, fahrenheit: bool) -> list[dict[str, Any]]:
    """The reading as the monitor sends it: `[{parameter, value, unit, loinc}]`."""
    values: dict[VitalParameter, float] = {
        VitalParameter.HEART_RATE: reading.heart_rate_bpm,
        VitalParameter.RESPIRATORY_RATE: reading.respiratory_rate_per_min,
        VitalParameter.SPO2: reading.spo2_percent,
        VitalParameter.SYSTOLIC_BP: reading.systolic_bp_mmhg,
        VitalParameter.DIASTOLIC_BP: reading.diastolic_bp_mmhg,
        VitalParameter.TEMPERATURE: reading.temperature_celsius,
    }
    sent = []
    for parameter, value in values.items():
        unit, loinc = UNITS[parameter]
        if parameter is VitalParameter.TEMPERATURE and fahrenheit:
            unit, value = "[degF]", round(value * 9 / 5 + 32, 1)
        sent.append({"parameter": parameter.value, "value": value, "unit": unit, "loinc": loinc})
    return sent


def corrupt(sent: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The same measurements with one value replaced by a physiologically impossible one."""
    parameter = rng.choice(sorted(IMPOSSIBLE))
    return [
        {**m, "value": IMPOSSIBLE[parameter]} if m["parameter"] == parameter.value else m
        for m in sent
    ]
