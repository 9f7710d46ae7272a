"""Sepsis screening scores: qSOFA (Sepsis-3), SIRS (1992) and the shock index.

Pure functions in the style of `domain.py`: no I/O, no clock; the caller passes `now` and the
maximum age per reading (keyed by `PatientReadings` field name). A reading that is missing, older
than its maximum age, or marked stale by fusion cannot decide a criterion: the criterion is
reported with `met=None`, and a score below its threshold with any such criterion is incomplete
(`positive=None`), never negative. Known criteria that already reach the threshold are positive.

SIRS reads the laboratory results (white cell count, PaCO2) from the readings, as fusion carries
them, with their own maximum ages (`LAB_MAX_AGE_SECONDS`, 24 h and 6 h, unless the caller's
mapping names the field). A caller such as `wardflow score` may pass a lab value explicitly
instead; it is taken as current and wins over the reading.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, NamedTuple

from schemas.assessments import AssessmentIssued, ScoreSummary
from schemas.patients import PatientReadings
from schemas.vocabulary import Consciousness

DEFAULT_MAX_AGE_SECONDS = 3600.0
LAB_MAX_AGE_SECONDS: dict[str, float] = {
    "white_cell_count_10e9_per_l": 86_400.0,
    "paco2_mmhg": 21_600.0,
}
"""Laboratory results are taken rarely: how old one may be to still decide its criterion, when
the caller's mapping does not say (as fusion's defaults)."""
SHOCK_INDEX_THRESHOLD = 1.0

ScoreName = Literal["qSOFA", "SIRS", "shock_index"]
Value = float | str | None


class CriterionResult(NamedTuple):
    """One criterion; `met=None` means it cannot be told (missing or stale input). A named tuple:
    several are built per snapshot, and tuples are the cheapest immutable record."""

    name: str
    met: bool | None
    value: Value
    unit: str | None


class ScoreResult(NamedTuple):
    """`points` counts criteria met among the known ones; `positive` is None when undecidable."""

    name: ScoreName
    points: int
    positive: bool | None
    complete: bool
    criteria: tuple[CriterionResult, ...]
    value: float | None = None


def _current(
    readings: PatientReadings, field: str, now: datetime, max_age_seconds: dict[str, float]
) -> tuple[bool, Value]:
    """(usable, value) of a reading: unusable when missing, marked stale, or too old."""
    reading = getattr(readings, field)
    if reading is None:
        return False, None
    value: Value = reading.level.value if field == "consciousness" else reading.value
    if reading.stale:  # fusion already judged it too old for this parameter
        return False, value
    age_seconds = (now - reading.observed_at).total_seconds()
    max_age = max_age_seconds.get(field, LAB_MAX_AGE_SECONDS.get(field, DEFAULT_MAX_AGE_SECONDS))
    return age_seconds <= max_age, value


def _numeric(
    readings: PatientReadings,
    field: str,
    now: datetime,
    max_age_seconds: dict[str, float],
    unit: str,
    test: Callable[[float], bool],
) -> CriterionResult:
    usable, value = _current(readings, field, now, max_age_seconds)
    met = test(float(value)) if usable and isinstance(value, float | int) else None
    return CriterionResult(field, met, value, unit)


def _lab(
    name: str, value: float | None, unit: str, test: Callable[[float], bool]
) -> CriterionResult:
    return CriterionResult(name, None if value is None else test(value), value, unit)


def _any_of(name: str, *parts: CriterionResult) -> CriterionResult:
    """Three-valued OR: met if any part is met, unknown if any part is unknown, else not met.

    The reported value is the first part that is met, else the first (primary) part.
    """
    met: bool | None = False
    if any(p.met for p in parts):
        met = True
    elif any(p.met is None for p in parts):
        met = None
    evidence = next((p for p in parts if p.met), parts[0])
    return CriterionResult(name, met, evidence.value, evidence.unit)


def _primary_or(
    name: str, primary: CriterionResult, alternative: CriterionResult
) -> CriterionResult:
    """A criterion decided by a routine measurement or, when it was taken, a further test.

    Met if either is met. When the primary is known and not met, the criterion is not met:
    the alternative (a blood gas, a band count) is only taken when clinically indicated, and its
    absence is not missing data. When the primary is unknown, so is the criterion, unless the
    alternative is met.
    """
    if primary.met or alternative.met:
        return _any_of(name, primary, alternative)
    if primary.met is None:
        return CriterionResult(name, None, primary.value, primary.unit)
    return CriterionResult(name, False, primary.value, primary.unit)


def _score(name: ScoreName, criteria: tuple[CriterionResult, ...], threshold: int) -> ScoreResult:
    points = sum(1 for c in criteria if c.met)
    complete = all(c.met is not None for c in criteria)
    positive: bool | None = True if points >= threshold else (False if complete else None)
    return ScoreResult(name, points, positive, complete, criteria)


def qsofa(
    readings: PatientReadings,
    now: datetime,
    *,
    max_age_seconds: dict[str, float],
    gcs: int | None = None,
) -> ScoreResult:
    """qSOFA: RR >= 22/min, altered mentation, systolic BP <= 100 mmHg; positive at >= 2.

    Mentation is altered when the ACVPU reading is C, V, P or U, or when a GCS given by the
    caller (assumed current) is below 15; it is known when either source is.
    """
    if gcs is not None and not 3 <= gcs <= 15:
        raise ValueError(f"GCS must be between 3 and 15, not {gcs}")
    usable, level = _current(readings, "consciousness", now, max_age_seconds)
    acvpu = CriterionResult(
        "altered_mentation", level != Consciousness.ALERT if usable else None, level, "ACVPU"
    )
    from_gcs = _lab(
        "altered_mentation", None if gcs is None else float(gcs), "GCS", lambda g: g < 15
    )
    known = [c for c in (acvpu, from_gcs) if c.met is not None]
    mentation = _any_of("altered_mentation", *known) if known else acvpu
    criteria = (
        _numeric(
            readings, "respiratory_rate_per_min", now, max_age_seconds, "/min", lambda r: r >= 22
        ),
        mentation,
        _numeric(readings, "systolic_bp_mmhg", now, max_age_seconds, "mmHg", lambda s: s <= 100),
    )
    return _score("qSOFA", criteria, threshold=2)


def sirs(
    readings: PatientReadings,
    now: datetime,
    *,
    max_age_seconds: dict[str, float],
    wbc_10e9_per_l: float | None = None,
    band_percent: float | None = None,
    paco2_mmhg: float | None = None,
) -> ScoreResult:
    """SIRS: temperature > 38 or < 36 C; HR > 90; RR > 20 or PaCO2 < 32 mmHg; WBC > 12 or < 4
    x10^9/L or bands > 10 %; positive at >= 2.

    WBC and PaCO2 are `wbc_10e9_per_l` and `paco2_mmhg` when given (taken as current), else the
    readings `white_cell_count_10e9_per_l` and `paco2_mmhg` (unusable when missing, stale or too
    old). Bands are only ever given by the caller.

    A criterion with an alternative is met by either. The respiratory rate and the white cell count
    decide their criteria when known; PaCO2 and bands only add a way to meet them (a blood gas or
    a differential is taken when indicated, so its absence is not missing data). Without a
    current respiratory rate or white cell count the criterion is unknown unless the alternative
    is met.
    """

    def lab(
        field: str, given: float | None, unit: str, test: Callable[[float], bool]
    ) -> CriterionResult:
        if given is not None:
            return _lab(field, given, unit, test)
        return _numeric(readings, field, now, max_age_seconds, unit, test)

    criteria = (
        _numeric(
            readings, "temperature_celsius", now, max_age_seconds, "Cel", lambda t: t > 38 or t < 36
        ),
        _numeric(readings, "heart_rate_bpm", now, max_age_seconds, "bpm", lambda h: h > 90),
        _primary_or(
            "respiration",
            _numeric(
                readings, "respiratory_rate_per_min", now, max_age_seconds, "/min", lambda r: r > 20
            ),
            lab("paco2_mmhg", paco2_mmhg, "mmHg", lambda p: p < 32),
        ),
        _primary_or(
            "white_cells",
            lab(
                "white_cell_count_10e9_per_l",
                wbc_10e9_per_l,
                "10*9/L",
                lambda w: w > 12 or w < 4,
            ),
            _lab("band_percent", band_percent, "%", lambda b: b > 10),
        ),
    )
    return _score("SIRS", criteria, threshold=2)


def shock_index(
    readings: PatientReadings, now: datetime, *, max_age_seconds: dict[str, float]
) -> ScoreResult:
    """Shock index: heart rate / systolic BP, rounded to 2 decimals.

    Positive at >= 1.0 by common clinical convention (not from the design's reference table),
    decided on the rounded value so the reported value and the verdict never disagree. Incomplete
    when either input is missing or stale (or the systolic BP is not positive).
    """
    hr_ok, hr = _current(readings, "heart_rate_bpm", now, max_age_seconds)
    sbp_ok, sbp = _current(readings, "systolic_bp_mmhg", now, max_age_seconds)
    value: float | None = None
    if (
        hr_ok
        and sbp_ok
        and isinstance(hr, float | int)
        and isinstance(sbp, float | int)
        and sbp > 0
    ):
        value = round(hr / sbp, 2)
    met = None if value is None else value >= SHOCK_INDEX_THRESHOLD
    criterion = CriterionResult("shock_index", met, value, "bpm/mmHg")
    return _score("shock_index", (criterion,), threshold=1)._replace(value=value)


def summary(result: ScoreResult) -> ScoreSummary:
    """The contract form of a score, as carried in AssessmentIssued."""
    return ScoreSummary(
        points=result.points,
        positive=result.positive,
        complete=result.complete,
        criteria={c.name: c.met for c in result.criteria},
        value=result.value,
    )


def with_sepsis_scores(
    assessment: AssessmentIssued,
    readings: PatientReadings,
    now: datetime,
    max_age: dict[str, float],
) -> AssessmentIssued:
    """The NEWS2 assessment with qSOFA, SIRS and the shock index added.

    SIRS takes its laboratory criteria from the readings (white cell count, PaCO2; band forms are
    not carried, see `sirs`). `max_age` may name the lab fields; otherwise `LAB_MAX_AGE_SECONDS`
    applies to them, so a NEWS2 maximum age never makes a morning blood count too old."""
    return assessment.model_copy(
        update={
            "qsofa": summary(qsofa(readings, now, max_age_seconds=max_age)),
            "sirs": summary(sirs(readings, now, max_age_seconds=max_age)),
            "shock_index": summary(shock_index(readings, now, max_age_seconds=max_age)),
        }
    )
