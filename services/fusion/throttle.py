"""Output throttling: which changes of a patient's state are worth a snapshot right now.

Pure. A monitor sends every second; diagnosis needs a snapshot when the score may change, not every
second. A patient's state is summarised by its `Signature`: the encounter, location and SpO2 scale,
and for each present, fresh reading a severity (how far its band is from the normal band). A new
snapshot is emitted immediately when, compared with the last emitted signature,

- the encounter status, ward, bed or SpO2 scale changed,
- a reading appeared, or disappeared or became stale (or became fresh again),
- a reading moved to a band further from normal (it got worse, in scoring terms);

otherwise the change is pending and goes out at most once per `min_interval` per patient, by the
next event or the flush timer. A reading moving back towards normal therefore waits up to that
interval, and a value wobbling across one edge costs at most two snapshots per interval, while a
deterioration is never delayed.

The bands are the NEWS2 rows of RCP 2017 (fusion must not import diagnosis, so the band edges are
repeated here, a small table), plus the qSOFA (RR >= 22, systolic <= 100) and SIRS (temperature
> 38 or < 36, pulse > 90, RR > 20, white cell count > 12 or < 4 x10^9/L, PaCO2 < 32 mmHg)
cut-offs. The laboratory results have only their SIRS bands: severity 1 outside them, else 0.
Values are matched as diagnosis matches them: a value is in the first band whose upper edge is at
least the value.
"""

from __future__ import annotations

import math
from bisect import bisect_left

from schemas.base import UtcDatetime, value_class
from schemas.vocabulary import Consciousness


def _below(edge: float) -> float:
    """The largest float under `edge`: turns a `value < edge` cut-off into an upper edge."""
    return math.nextafter(edge, -math.inf)


BANDS: dict[str, tuple[tuple[float, ...], int]] = {
    "respiratory_rate_per_min": ((8, 11, 20, _below(22), 24), 2),
    "heart_rate_bpm": ((40, 50, 90, 110, 130), 2),
    "systolic_bp_mmhg": ((90, 100, 110, 219), 3),
    "temperature_celsius": ((35.0, _below(36.0), 36.0, 38.0, 39.0), 3),
    "white_cell_count_10e9_per_l": ((_below(4.0), 12.0), 1),  # SIRS: < 4 or > 12 x10^9/L
    "paco2_mmhg": ((_below(32.0),), 1),  # SIRS: < 32 mmHg
}
"""Parameter -> (upper edges of its bands, index of the normal band)."""
SPO2_SCALE_1: tuple[tuple[float, ...], int] = ((91.0, 93.0, 95.0), 3)
SPO2_SCALE_2: tuple[tuple[float, ...], int] = ((83.0, 85.0, 87.0, 92.0, 94.0, 96.0), 3)
"""SpO2 bands by scale; on scale 2, above 92 % scores 0 on air (the normal band)."""
ACVPU = (
    Consciousness.ALERT,
    Consciousness.NEW_CONFUSION,
    Consciousness.VOICE,
    Consciousness.PAIN,
    Consciousness.UNRESPONSIVE,
)


def _distance(value: float, edges: tuple[float, ...], normal: int) -> int:
    return abs(bisect_left(edges, value) - normal)


def spo2_severity(percent: float, scale: int, on_oxygen: bool) -> int:
    edges, normal = SPO2_SCALE_2 if scale == 2 else SPO2_SCALE_1
    band = bisect_left(edges, percent)
    if scale == 2 and not on_oxygen:
        band = min(band, normal)
    return abs(band - normal)


def numeric_severity(parameter: str, value: float) -> int:
    """How many bands from normal; 0 for parameters outside the scores (diastolic BP, flow)."""
    if parameter not in BANDS:
        return 0
    edges, normal = BANDS[parameter]
    return _distance(value, edges, normal)


def consciousness_severity(level: Consciousness) -> int:
    return ACVPU.index(level)


@value_class(kw_only=True)
class Signature:
    """What a snapshot said that matters for scoring; compared to decide on the next one. Made
    for every event: a plain dataclass (validated by pydantic only as part of the record read
    back from the changelog)."""

    location: str
    severities: dict[str, int]
    """Per present, fresh reading; a missing or stale reading has no entry."""


@value_class(kw_only=True)
class Throttle:
    """Throttle state of one patient, kept in the table record so it survives a crash."""

    pending: bool = False
    emitted_at: UtcDatetime | None = None
    signature: Signature | None = None


def must_emit_now(last: Signature | None, current: Signature) -> bool:
    if last is None or last.location != current.location:
        return True
    if last.severities.keys() != current.severities.keys():
        return True
    return any(current.severities[name] > last.severities[name] for name in current.severities)
