"""qSOFA, SIRS and shock index at every threshold, and their incomplete semantics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from schemas.assessments import AssessmentIssued
from schemas.patients import ConsciousnessReading, NumericReading, PatientReadings
from schemas.vocabulary import Consciousness
from services.diagnosis.scores import (
    CriterionResult,
    qsofa,
    shock_index,
    sirs,
    with_sepsis_scores,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RECENT = NOW - timedelta(minutes=5)
TWO_HOURS_AGO = NOW - timedelta(hours=2)
MAX_AGES = {"respiratory_rate_per_min": 3600.0, "systolic_bp_mmhg": 3600.0}

NORMAL: dict[str, Any] = {
    "respiratory_rate_per_min": 16.0,
    "systolic_bp_mmhg": 120.0,
    "heart_rate_bpm": 70.0,
    "temperature_celsius": 37.0,
    "consciousness": Consciousness.ALERT,
}
NORMAL_LABS: dict[str, float] = {"wbc_10e9_per_l": 8.0, "band_percent": 2.0, "paco2_mmhg": 40.0}


def make_readings(
    *, observed_at: dict[str, datetime] | None = None, **overrides: Any
) -> PatientReadings:
    """Normal readings observed 5 minutes ago; `name=None` removes a reading, `name_stale=True`
    marks it stale as fusion would."""
    values = {**NORMAL, **{k: v for k, v in overrides.items() if not k.endswith("_stale")}}
    fields: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        when = (observed_at or {}).get(name, RECENT)
        stale = bool(overrides.get(f"{name}_stale", False))
        if name == "consciousness":
            fields[name] = ConsciousnessReading(
                level=value, observed_at=when, source="test", stale=stale
            )
        else:
            fields[name] = NumericReading(value=value, observed_at=when, source="test", stale=stale)
    return PatientReadings(**fields)


def criterion(criteria: tuple[CriterionResult, ...], name: str) -> CriterionResult:
    return next(c for c in criteria if c.name == name)


# qSOFA ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "met"), [(21.0, False), (21.9, False), (22.0, True), (30.0, True)]
)
def test_qsofa_respiratory_rate_threshold_is_22(rate: float, met: bool) -> None:
    result = qsofa(make_readings(respiratory_rate_per_min=rate), NOW, max_age_seconds=MAX_AGES)
    assert criterion(result.criteria, "respiratory_rate_per_min").met is met
    assert result.points == int(met)


@pytest.mark.parametrize(
    ("sbp", "met"), [(90.0, True), (100.0, True), (100.1, False), (101.0, False)]
)
def test_qsofa_systolic_threshold_is_100(sbp: float, met: bool) -> None:
    result = qsofa(make_readings(systolic_bp_mmhg=sbp), NOW, max_age_seconds=MAX_AGES)
    assert criterion(result.criteria, "systolic_bp_mmhg").met is met


@pytest.mark.parametrize(
    ("level", "met"),
    [
        (Consciousness.ALERT, False),
        (Consciousness.NEW_CONFUSION, True),
        (Consciousness.VOICE, True),
        (Consciousness.PAIN, True),
        (Consciousness.UNRESPONSIVE, True),
    ],
)
def test_qsofa_mentation_altered_unless_alert(level: Consciousness, met: bool) -> None:
    result = qsofa(make_readings(consciousness=level), NOW, max_age_seconds=MAX_AGES)
    assert criterion(result.criteria, "altered_mentation").met is met


@pytest.mark.parametrize(
    ("level", "gcs", "met"),
    [
        (Consciousness.ALERT, 15, False),
        (Consciousness.ALERT, 14, True),
        (Consciousness.ALERT, 3, True),
        (Consciousness.NEW_CONFUSION, 15, True),
        (None, 15, False),
        (None, 14, True),
        (None, None, None),
    ],
)
def test_qsofa_mentation_from_gcs_below_15(
    level: Consciousness | None, gcs: int | None, met: bool | None
) -> None:
    result = qsofa(make_readings(consciousness=level), NOW, max_age_seconds=MAX_AGES, gcs=gcs)
    assert criterion(result.criteria, "altered_mentation").met is met


@pytest.mark.parametrize("gcs", [2, 16])
def test_qsofa_rejects_impossible_gcs(gcs: int) -> None:
    with pytest.raises(ValueError, match="GCS"):
        qsofa(make_readings(), NOW, max_age_seconds=MAX_AGES, gcs=gcs)


def test_qsofa_two_criteria_met_is_positive() -> None:
    readings = make_readings(respiratory_rate_per_min=22.0, systolic_bp_mmhg=100.0)
    result = qsofa(readings, NOW, max_age_seconds=MAX_AGES)
    assert (result.name, result.points, result.positive, result.complete) == (
        "qSOFA",
        2,
        True,
        True,
    )


def test_qsofa_one_criterion_met_and_complete_is_negative() -> None:
    result = qsofa(make_readings(respiratory_rate_per_min=25.0), NOW, max_age_seconds=MAX_AGES)
    assert (result.points, result.positive, result.complete) == (1, False, True)


def test_qsofa_all_known_and_normal_is_negative() -> None:
    result = qsofa(make_readings(), NOW, max_age_seconds=MAX_AGES)
    assert (result.points, result.positive, result.complete) == (0, False, True)


def test_qsofa_two_met_with_one_missing_is_positive_but_incomplete() -> None:
    readings = make_readings(
        respiratory_rate_per_min=24.0, systolic_bp_mmhg=95.0, consciousness=None
    )
    result = qsofa(readings, NOW, max_age_seconds=MAX_AGES)
    assert (result.points, result.positive, result.complete) == (2, True, False)
    assert criterion(result.criteria, "altered_mentation").met is None


def test_qsofa_one_met_with_one_missing_is_undecided_never_negative() -> None:
    readings = make_readings(respiratory_rate_per_min=24.0, systolic_bp_mmhg=None)
    result = qsofa(readings, NOW, max_age_seconds=MAX_AGES)
    assert (result.points, result.positive, result.complete) == (1, None, False)


@pytest.mark.parametrize(
    ("overrides", "observed_at"),
    [
        ({"systolic_bp_mmhg_stale": True}, None),
        ({}, {"systolic_bp_mmhg": TWO_HOURS_AGO}),
        ({"systolic_bp_mmhg": None}, None),
    ],
    ids=["marked-stale", "older-than-max-age", "missing"],
)
def test_qsofa_stale_or_missing_reading_is_unknown(
    overrides: dict[str, Any], observed_at: dict[str, datetime] | None
) -> None:
    readings = make_readings(observed_at=observed_at, **overrides)
    result = qsofa(readings, NOW, max_age_seconds=MAX_AGES)
    assert criterion(result.criteria, "systolic_bp_mmhg").met is None
    assert (result.positive, result.complete) == (None, False)


def test_qsofa_reading_exactly_at_max_age_still_counts() -> None:
    readings = make_readings(observed_at={"systolic_bp_mmhg": NOW - timedelta(seconds=3600)})
    result = qsofa(readings, NOW, max_age_seconds=MAX_AGES)
    assert criterion(result.criteria, "systolic_bp_mmhg").met is False


# SIRS -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("celsius", "met"), [(35.9, True), (36.0, False), (37.0, False), (38.0, False), (38.1, True)]
)
def test_sirs_temperature_outside_36_to_38(celsius: float, met: bool) -> None:
    result = sirs(
        make_readings(temperature_celsius=celsius), NOW, max_age_seconds={}, **NORMAL_LABS
    )
    assert criterion(result.criteria, "temperature_celsius").met is met


@pytest.mark.parametrize(("bpm", "met"), [(90.0, False), (90.5, True), (91.0, True)])
def test_sirs_heart_rate_above_90(bpm: float, met: bool) -> None:
    result = sirs(make_readings(heart_rate_bpm=bpm), NOW, max_age_seconds={}, **NORMAL_LABS)
    assert criterion(result.criteria, "heart_rate_bpm").met is met


@pytest.mark.parametrize(
    ("rate", "paco2", "met"),
    [
        (20.0, 40.0, False),
        (21.0, 40.0, True),
        (16.0, 32.0, False),
        (16.0, 31.9, True),
        (21.0, None, True),
        (20.0, None, False),  # no blood gas taken: the rate decides
    ],
)
def test_sirs_respiration_rate_above_20_or_paco2_below_32(
    rate: float, paco2: float | None, met: bool | None
) -> None:
    labs = {**NORMAL_LABS, "paco2_mmhg": paco2}
    result = sirs(make_readings(respiratory_rate_per_min=rate), NOW, max_age_seconds={}, **labs)
    assert criterion(result.criteria, "respiration").met is met


@pytest.mark.parametrize(
    ("wbc", "bands", "met"),
    [
        (3.9, 2.0, True),
        (4.0, 2.0, False),
        (12.0, 2.0, False),
        (12.1, 2.0, True),
        (8.0, 10.0, False),
        (8.0, 10.1, True),
        (None, 10.1, True),
        (12.1, None, True),
        (8.0, None, False),  # no differential taken: the count decides
        (None, None, None),
    ],
)
def test_sirs_white_cells_outside_4_to_12_or_bands_above_10(
    wbc: float | None, bands: float | None, met: bool | None
) -> None:
    labs = {**NORMAL_LABS, "wbc_10e9_per_l": wbc, "band_percent": bands}
    result = sirs(make_readings(), NOW, max_age_seconds={}, **labs)
    assert criterion(result.criteria, "white_cells").met is met


def test_sirs_two_criteria_met_is_positive() -> None:
    readings = make_readings(temperature_celsius=38.5, heart_rate_bpm=110.0)
    result = sirs(readings, NOW, max_age_seconds={}, **NORMAL_LABS)
    assert (result.name, result.points, result.positive, result.complete) == ("SIRS", 2, True, True)


def test_sirs_all_known_and_normal_is_negative() -> None:
    result = sirs(make_readings(), NOW, max_age_seconds={}, **NORMAL_LABS)
    assert (result.points, result.positive, result.complete) == (0, False, True)


def test_sirs_two_met_without_labs_is_positive_but_incomplete() -> None:
    readings = make_readings(temperature_celsius=35.5, respiratory_rate_per_min=24.0)
    result = sirs(readings, NOW, max_age_seconds={})
    assert (result.points, result.positive, result.complete) == (2, True, False)
    assert criterion(result.criteria, "white_cells").met is None


def test_sirs_one_met_without_labs_is_undecided_never_negative() -> None:
    result = sirs(make_readings(heart_rate_bpm=120.0), NOW, max_age_seconds={})
    assert (result.points, result.positive, result.complete) == (1, None, False)


def test_sirs_stale_heart_rate_is_unknown() -> None:
    readings = make_readings(heart_rate_bpm=120.0, heart_rate_bpm_stale=True)
    result = sirs(readings, NOW, max_age_seconds={}, **NORMAL_LABS)
    assert criterion(result.criteria, "heart_rate_bpm").met is None
    assert (result.points, result.positive, result.complete) == (0, None, False)


def test_sirs_honours_a_shorter_max_age() -> None:
    readings = make_readings(temperature_celsius=39.0)
    result = sirs(readings, NOW, max_age_seconds={"temperature_celsius": 60.0}, **NORMAL_LABS)
    assert criterion(result.criteria, "temperature_celsius").met is None
    assert result.positive is None


# SIRS from the laboratory readings fusion carries ------------------------------------------------

WBC, PACO2 = "white_cell_count_10e9_per_l", "paco2_mmhg"
NEWS2_MAX_AGES = dict.fromkeys(
    ["respiratory_rate_per_min", "heart_rate_bpm", "temperature_celsius", "systolic_bp_mmhg"],
    3600.0,
)  # as the diagnosis app passes them: no lab field named


@pytest.mark.parametrize(
    ("overrides", "observed_at", "bands", "met"),
    [
        ({WBC: 14.2}, None, None, True),
        ({WBC: 3.5}, None, None, True),
        ({WBC: 12.1}, NOW - timedelta(hours=23), None, True),  # a morning count still decides
        ({WBC: 12.1}, NOW - timedelta(hours=24), None, True),  # exactly at its maximum age
        ({WBC: 8.0}, None, 2.0, False),
        ({WBC: 8.0}, None, None, False),  # normal, no differential: the count decides
        ({WBC: 14.2, f"{WBC}_stale": True}, None, None, None),  # fusion marked it stale
        ({WBC: 14.2}, NOW - timedelta(hours=24, seconds=1), None, None),  # too old
        ({WBC: 14.2, f"{WBC}_stale": True}, None, 11.0, True),  # bands still decide
        ({}, None, 2.0, None),  # never measured
    ],
    ids=[
        "high",
        "low",
        "23h-old",
        "24h-old",
        "normal-with-bands",
        "normal-without-bands",
        "stale",
        "too-old",
        "stale-but-bands",
        "missing",
    ],
)
def test_sirs_white_cells_from_the_reading_while_fresh(
    overrides: dict[str, Any],
    observed_at: datetime | None,
    bands: float | None,
    met: bool | None,
) -> None:
    readings = make_readings(observed_at={WBC: observed_at or RECENT}, **overrides)
    result = sirs(readings, NOW, max_age_seconds=NEWS2_MAX_AGES, band_percent=bands)
    assert criterion(result.criteria, "white_cells").met is met


@pytest.mark.parametrize(
    ("rate", "overrides", "observed_at", "met"),
    [
        (16.0, {PACO2: 31.9}, None, True),
        (16.0, {PACO2: 32.0}, None, False),
        (16.0, {PACO2: 40.0}, NOW - timedelta(hours=6), False),  # exactly at its maximum age
        (16.0, {PACO2: 28.0}, NOW - timedelta(hours=6, seconds=1), False),  # too old: rate
        (16.0, {PACO2: 28.0, f"{PACO2}_stale": True}, None, False),  # stale: the rate decides
        (21.0, {PACO2: 28.0, f"{PACO2}_stale": True}, None, True),  # the rate alone is met
        (16.0, {}, None, False),  # never measured: the rate decides
        (None, {}, None, None),  # neither: unknown
    ],
    ids=["low", "at-32", "6h-old", "too-old", "stale", "stale-rate-met", "missing", "no-rate"],
)
def test_sirs_respiration_from_the_paco2_reading_while_fresh(
    rate: float | None, overrides: dict[str, Any], observed_at: datetime | None, met: bool | None
) -> None:
    readings = make_readings(
        observed_at={PACO2: observed_at or RECENT}, respiratory_rate_per_min=rate, **overrides
    )
    result = sirs(readings, NOW, max_age_seconds=NEWS2_MAX_AGES)
    assert criterion(result.criteria, "respiration").met is met


def test_sirs_honours_a_lab_maximum_age_the_caller_names() -> None:
    readings = make_readings(
        observed_at={WBC: NOW - timedelta(hours=2)}, **{WBC: 14.2, PACO2: 28.0}
    )
    result = sirs(readings, NOW, max_age_seconds={WBC: 3600.0, PACO2: 3600.0})
    assert criterion(result.criteria, "white_cells").met is None
    assert criterion(result.criteria, "respiration").met is True, "PaCO2 5 minutes old"


@pytest.mark.parametrize(
    ("reading", "given", "met"),
    [(8.0, 14.2, True), (14.2, 8.0, False), (None, 14.2, True), (14.2, None, True)],
    ids=["given-high", "given-normal", "given-only", "reading-only"],
)
def test_a_lab_value_given_explicitly_wins_over_the_reading(
    reading: float | None, given: float | None, met: bool | None
) -> None:
    readings = make_readings(**{WBC: reading})
    result = sirs(readings, NOW, max_age_seconds={}, wbc_10e9_per_l=given)
    assert criterion(result.criteria, "white_cells").met is met


def test_sirs_is_positive_from_fresh_labs_and_one_vital_sign() -> None:
    readings = make_readings(heart_rate_bpm=120.0, **{WBC: 14.2, PACO2: 30.0})
    result = sirs(readings, NOW, max_age_seconds=NEWS2_MAX_AGES)
    assert (result.points, result.positive, result.complete) == (3, True, True)


def test_sirs_with_stale_labs_and_one_vital_sign_is_undecided() -> None:
    readings = make_readings(
        heart_rate_bpm=120.0,
        observed_at={WBC: NOW - timedelta(days=2), PACO2: NOW - timedelta(hours=7)},
        **{WBC: 14.2, PACO2: 30.0},
    )
    result = sirs(readings, NOW, max_age_seconds=NEWS2_MAX_AGES)
    assert (result.points, result.positive, result.complete) == (1, None, False)


def assessment() -> AssessmentIssued:
    return AssessmentIssued(
        event_id=UUID(int=1),
        occurred_at=NOW,
        recorded_at=NOW,
        source="test",
        patient_id="P1",
        aggregate=0,
        band=None,
        complete=False,
        sub_scores=[],
        clinical_response="test",
        state_version=1,
        cause_recorded_at=NOW,
    )


@pytest.mark.parametrize(
    ("labs", "observed_at", "points", "positive", "criteria"),
    [
        ({WBC: 14.2, PACO2: 30.0}, RECENT, 3, True, {"white_cells": True, "respiration": True}),
        ({WBC: 14.2}, NOW - timedelta(hours=10), 2, True, {"white_cells": True}),
        ({WBC: 14.2, PACO2: 30.0}, NOW - timedelta(days=2), 1, None, {"white_cells": None}),
        ({}, RECENT, 1, None, {"white_cells": None, "respiration": False}),
    ],
    ids=["fresh-labs", "morning-count", "stale-labs", "no-labs"],
)
def test_the_pipeline_path_takes_the_labs_from_the_readings(
    labs: dict[str, float],
    observed_at: datetime,
    points: int,
    positive: bool | None,
    criteria: dict[str, bool | None],
) -> None:
    readings = make_readings(
        heart_rate_bpm=120.0, observed_at=dict.fromkeys((WBC, PACO2), observed_at), **labs
    )
    scored = with_sepsis_scores(assessment(), readings, NOW, NEWS2_MAX_AGES)
    assert scored.sirs is not None
    assert (scored.sirs.points, scored.sirs.positive) == (points, positive)
    assert criteria.items() <= scored.sirs.criteria.items()


# Shock index ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bpm", "sbp", "value", "positive"),
    [(99.0, 100.0, 0.99, False), (100.0, 100.0, 1.0, True), (120.0, 80.0, 1.5, True)],
)
def test_shock_index_positive_from_1_0(
    bpm: float, sbp: float, value: float, positive: bool
) -> None:
    readings = make_readings(heart_rate_bpm=bpm, systolic_bp_mmhg=sbp)
    result = shock_index(readings, NOW, max_age_seconds={})
    assert (result.name, result.value, result.positive, result.complete) == (
        "shock_index",
        value,
        positive,
        True,
    )
    assert result.points == int(positive)


def test_shock_index_rounds_to_two_decimals() -> None:
    readings = make_readings(heart_rate_bpm=70.0, systolic_bp_mmhg=120.0)
    assert shock_index(readings, NOW, max_age_seconds={}).value == 0.58


@pytest.mark.parametrize(
    "overrides",
    [{"heart_rate_bpm": None}, {"systolic_bp_mmhg": None}, {"heart_rate_bpm_stale": True}],
    ids=["no-heart-rate", "no-systolic", "stale-heart-rate"],
)
def test_shock_index_incomplete_without_both_inputs(overrides: dict[str, Any]) -> None:
    result = shock_index(make_readings(**overrides), NOW, max_age_seconds={})
    assert (result.value, result.positive, result.complete, result.points) == (None, None, False, 0)
