"""NEWS2 scoring against the RCP 2017 table, at every threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Band, Consciousness
from services.diagnosis.domain import (
    INCOMPLETE_PREFIX,
    NEWS2_PARAMETERS,
    ScoringPolicy,
    assess,
    band_for,
    clinical_response,
    consciousness_points,
    oxygen_points,
    pulse_points,
    respiration_points,
    spo2_scale1_points,
    spo2_scale2_points,
    systolic_points,
    temperature_points,
)
from services.diagnosis.rules import DEFAULT_RULES

RESPONSES = DEFAULT_RULES.responses
RESPONSE_ROUTINE = RESPONSES.routine.clinical_response
RESPONSE_LOW = RESPONSES.low.clinical_response
RESPONSE_LOW_MEDIUM = RESPONSES.low_medium.clinical_response
RESPONSE_MEDIUM = RESPONSES.medium.clinical_response
RESPONSE_HIGH = RESPONSES.high.clinical_response

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
RECENT = NOW - timedelta(minutes=5)
TWO_HOURS_AGO = NOW - timedelta(hours=2)
EVENT_ID = UUID("00000000-0000-4000-8000-000000000001")

NORMAL: dict[str, Any] = {
    "respiratory_rate_per_min": 16.0,
    "spo2_percent": 98.0,
    "supplemental_oxygen": False,
    "systolic_bp_mmhg": 120.0,
    "heart_rate_bpm": 70.0,
    "consciousness": Consciousness.ALERT,
    "temperature_celsius": 37.0,
}


def make_state(
    *, observed_at: dict[str, datetime] | None = None, **overrides: Any
) -> PatientStateUpdated:
    """A normal patient, readings observed 5 minutes ago; `name=None` removes a reading."""
    values = {**NORMAL, "diastolic_bp_mmhg": 80.0, **overrides}
    times = observed_at or {}
    readings: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        at = times.get(name, RECENT)
        if name == "supplemental_oxygen":
            readings[name] = OxygenReading(on_supplemental_oxygen=value, observed_at=at, source="m")
        elif name == "consciousness":
            readings[name] = ConsciousnessReading(level=value, observed_at=at, source="nurse")
        else:
            readings[name] = NumericReading(value=value, observed_at=at, source="monitor")
    return PatientStateUpdated(
        event_id=uuid4(),
        occurred_at=RECENT,
        recorded_at=RECENT,
        source="fusion",
        patient_id="p-1",
        version=7,
        ward="ward-a",
        readings=PatientReadings(**readings),
        cause_recorded_at=RECENT - timedelta(seconds=1),
    )


def run(state: PatientStateUpdated, policy: ScoringPolicy | None = None) -> Any:
    return assess(state, NOW, policy or ScoringPolicy(), event_id=EVENT_ID, source="diagnosis")


def sub_score(assessment: Any, parameter: str) -> Any:
    return next(s for s in assessment.sub_scores if s.parameter == parameter)


# --- per-parameter points, both sides of every threshold -------------------------------------


@pytest.mark.parametrize(
    ("rate", "points"),
    [
        (0, 3),
        (8, 3),
        (8.5, 1),
        (9, 1),
        (11, 1),
        (12, 0),
        (20, 0),
        (20.5, 2),
        (21, 2),
        (24, 2),
        (24.5, 3),
        (25, 3),
        (60, 3),
    ],
)
def test_respiration_rate_points(rate: float, points: int) -> None:
    assert respiration_points(rate) == points


@pytest.mark.parametrize(
    ("percent", "points"),
    [
        (70, 3),
        (91, 3),
        (91.5, 2),
        (92, 2),
        (93, 2),
        (94, 1),
        (95, 1),
        (95.5, 0),
        (96, 0),
        (100, 0),
    ],
)
def test_spo2_scale1_points(percent: float, points: int) -> None:
    assert spo2_scale1_points(percent) == points


@pytest.mark.parametrize(
    ("percent", "on_oxygen", "points"),
    [
        (70, False, 3),
        (83, True, 3),
        (83, False, 3),
        (84, True, 2),
        (85, False, 2),
        (86, True, 1),
        (87, False, 1),
        (88, True, 0),
        (92, True, 0),
        (92, False, 0),
        (93, False, 0),
        (93, True, 1),
        (94, True, 1),
        (95, False, 0),
        (95, True, 2),
        (96, True, 2),
        (97, False, 0),
        (97, True, 3),
        (100, False, 0),
        (100, True, 3),
    ],
)
def test_spo2_scale2_points(percent: float, on_oxygen: bool, points: int) -> None:
    assert spo2_scale2_points(percent, on_oxygen) == points


@pytest.mark.parametrize(("on_oxygen", "points"), [(False, 0), (True, 2)])
def test_supplemental_oxygen_points(on_oxygen: bool, points: int) -> None:
    assert oxygen_points(on_oxygen) == points


@pytest.mark.parametrize(
    ("mmhg", "points"),
    [
        (60, 3),
        (90, 3),
        (91, 2),
        (100, 2),
        (101, 1),
        (110, 1),
        (111, 0),
        (219, 0),
        (219.5, 3),
        (220, 3),
        (260, 3),
    ],
)
def test_systolic_bp_points(mmhg: float, points: int) -> None:
    assert systolic_points(mmhg) == points


@pytest.mark.parametrize(
    ("bpm", "points"),
    [
        (20, 3),
        (40, 3),
        (41, 1),
        (50, 1),
        (51, 0),
        (90, 0),
        (91, 1),
        (110, 1),
        (111, 2),
        (130, 2),
        (130.5, 3),
        (131, 3),
        (200, 3),
    ],
)
def test_pulse_points(bpm: float, points: int) -> None:
    assert pulse_points(bpm) == points


@pytest.mark.parametrize(
    ("level", "points"),
    [
        (Consciousness.ALERT, 0),
        (Consciousness.NEW_CONFUSION, 3),
        (Consciousness.VOICE, 3),
        (Consciousness.PAIN, 3),
        (Consciousness.UNRESPONSIVE, 3),
    ],
)
def test_consciousness_points(level: Consciousness, points: int) -> None:
    assert consciousness_points(level) == points


@pytest.mark.parametrize(
    ("celsius", "points"),
    [
        (33.0, 3),
        (35.0, 3),
        (35.05, 1),
        (35.1, 1),
        (36.0, 1),
        (36.1, 0),
        (38.0, 0),
        (38.05, 1),
        (38.1, 1),
        (39.0, 1),
        (39.05, 2),
        (39.1, 2),
        (41.0, 2),
    ],
)
def test_temperature_points(celsius: float, points: int) -> None:
    assert temperature_points(celsius) == points


# --- bands and clinical response -------------------------------------------------------------


@pytest.mark.parametrize(
    ("aggregate", "any_single_three", "band"),
    [
        (0, False, Band.LOW),
        (4, False, Band.LOW),
        (3, True, Band.LOW_MEDIUM),
        (4, True, Band.LOW_MEDIUM),
        (5, False, Band.MEDIUM),
        (5, True, Band.MEDIUM),
        (6, False, Band.MEDIUM),
        (6, True, Band.MEDIUM),
        (7, False, Band.HIGH),
        (7, True, Band.HIGH),
        (20, True, Band.HIGH),
    ],
)
def test_band_for_aggregate(aggregate: int, any_single_three: bool, band: Band) -> None:
    assert band_for(aggregate, any_single_three) == band


@pytest.mark.parametrize(
    ("aggregate", "band", "response"),
    [
        (0, Band.LOW, RESPONSE_ROUTINE),
        (1, Band.LOW, RESPONSE_LOW),
        (4, Band.LOW, RESPONSE_LOW),
        (3, Band.LOW_MEDIUM, RESPONSE_LOW_MEDIUM),
        (5, Band.MEDIUM, RESPONSE_MEDIUM),
        (7, Band.HIGH, RESPONSE_HIGH),
    ],
)
def test_clinical_response_for_complete_score(aggregate: int, band: Band, response: str) -> None:
    assert clinical_response(aggregate, band, complete=True) == response


def test_clinical_response_texts_follow_rcp() -> None:
    assert RESPONSE_ROUTINE == "Continue routine NEWS monitoring"
    assert RESPONSE_LOW.startswith("Inform registered nurse")
    assert RESPONSE_LOW_MEDIUM.startswith("Urgent ward-based response")
    assert RESPONSE_MEDIUM.startswith("Urgent response")
    assert RESPONSE_HIGH.startswith("Emergency response")
    assert "HDU or ICU" in RESPONSE_HIGH


@pytest.mark.parametrize(
    ("aggregate", "band", "frequency", "respond_within"),
    [
        (0, Band.LOW, "minimum 12-hourly", None),
        (1, Band.LOW, "minimum 4-6-hourly", None),
        (4, Band.LOW, "minimum 4-6-hourly", None),
        (3, Band.LOW_MEDIUM, "minimum 1-hourly", None),
        (5, Band.MEDIUM, "minimum 1-hourly", 60),
        (6, Band.MEDIUM, "minimum 1-hourly", 60),
        (7, Band.HIGH, "continuous monitoring of vital signs", 30),
    ],
)
def test_monitoring_frequency_and_response_time_per_band(
    aggregate: int, band: Band, frequency: str, respond_within: int | None
) -> None:
    response = RESPONSES.for_band(band, aggregate)
    assert response.monitoring_frequency == frequency
    assert response.respond_within_minutes == respond_within


def test_clinical_response_for_incomplete_high_score_says_incomplete_first() -> None:
    response = clinical_response(8, Band.HIGH, complete=False)
    assert response == INCOMPLETE_PREFIX + RESPONSE_HIGH
    assert response.startswith("INCOMPLETE: missing or stale parameters")


def test_clinical_response_without_band_never_reads_as_routine() -> None:
    response = clinical_response(0, None, complete=False)
    assert response.startswith("INCOMPLETE:")
    assert RESPONSE_ROUTINE not in response


# --- assess() --------------------------------------------------------------------------------


def test_complete_normal_patient_scores_0_low_routine() -> None:
    assessment = run(make_state())
    assert assessment.aggregate == 0
    assert assessment.band == Band.LOW
    assert assessment.complete is True
    assert assessment.missing == [] and assessment.stale == []
    assert assessment.clinical_response == RESPONSE_ROUTINE
    assert [s.parameter for s in assessment.sub_scores] == list(NEWS2_PARAMETERS)
    assert all(s.status == "scored" and s.points == 0 for s in assessment.sub_scores)


def test_assessment_carries_envelope_and_state_lineage() -> None:
    state = make_state()
    assessment = run(state)
    assert assessment.event_id == EVENT_ID
    assert assessment.source == "diagnosis"
    assert assessment.occurred_at == NOW and assessment.recorded_at == NOW
    assert assessment.patient_id == "p-1" and assessment.ward == "ward-a"
    assert assessment.state_version == 7
    assert assessment.cause_recorded_at == state.cause_recorded_at
    assert assessment.score_name == "NEWS2" and assessment.spo2_scale == 1


def test_diastolic_bp_is_not_scored() -> None:
    assessment = run(make_state(diastolic_bp_mmhg=20.0))
    assert "diastolic_bp_mmhg" not in {s.parameter for s in assessment.sub_scores}
    assert assessment.aggregate == 0


def test_aggregate_sums_every_parameter() -> None:
    state = make_state(
        respiratory_rate_per_min=22.0,  # 2
        spo2_percent=94.0,  # 1
        supplemental_oxygen=True,  # 2
        systolic_bp_mmhg=105.0,  # 1
        heart_rate_bpm=95.0,  # 1
        consciousness=Consciousness.ALERT,  # 0
        temperature_celsius=38.5,  # 1
    )
    assessment = run(state)
    assert assessment.aggregate == 8
    assert assessment.band == Band.HIGH
    assert assessment.clinical_response == RESPONSE_HIGH


def test_single_3_gives_low_medium() -> None:
    assessment = run(make_state(consciousness=Consciousness.NEW_CONFUSION))
    assert (assessment.aggregate, assessment.band) == (3, Band.LOW_MEDIUM)
    assert assessment.clinical_response == RESPONSE_LOW_MEDIUM


def test_single_3_with_aggregate_5_gives_medium() -> None:
    assessment = run(make_state(respiratory_rate_per_min=25.0, supplemental_oxygen=True))
    assert (assessment.aggregate, assessment.band) == (5, Band.MEDIUM)


def test_aggregate_1_to_4_gives_low_with_increased_monitoring() -> None:
    assessment = run(make_state(heart_rate_bpm=95.0))
    assert (assessment.aggregate, assessment.band) == (1, Band.LOW)
    assert assessment.clinical_response == RESPONSE_LOW


@pytest.mark.parametrize("parameter", NEWS2_PARAMETERS)
def test_missing_parameter_makes_score_incomplete_without_band(parameter: str) -> None:
    assessment = run(make_state(**{parameter: None}))
    assert assessment.complete is False
    assert assessment.missing == [parameter]
    assert assessment.band is None
    assert assessment.clinical_response.startswith("INCOMPLETE:")
    missing = sub_score(assessment, parameter)
    assert (missing.status, missing.points, missing.value) == ("missing", None, None)


@pytest.mark.parametrize("parameter", NEWS2_PARAMETERS)
def test_reading_2h_old_with_1h_max_age_is_stale_and_not_scored(parameter: str) -> None:
    abnormal = {
        "respiratory_rate_per_min": 30.0,
        "spo2_percent": 85.0,
        "supplemental_oxygen": True,
        "systolic_bp_mmhg": 80.0,
        "heart_rate_bpm": 150.0,
        "consciousness": Consciousness.UNRESPONSIVE,
        "temperature_celsius": 34.0,
    }
    state = make_state(observed_at={parameter: TWO_HOURS_AGO}, **{parameter: abnormal[parameter]})
    assessment = run(state)
    assert assessment.stale == [parameter] and assessment.missing == []
    assert assessment.complete is False
    assert assessment.aggregate == 0
    assert assessment.band is None
    stale = sub_score(assessment, parameter)
    assert (stale.status, stale.points, stale.observed_at) == ("stale", None, TWO_HOURS_AGO)


def test_reading_exactly_at_max_age_is_still_scored() -> None:
    state = make_state(observed_at={"heart_rate_bpm": NOW - timedelta(hours=1)})
    assessment = run(state)
    assert assessment.complete is True
    assert sub_score(assessment, "heart_rate_bpm").status == "scored"


def test_max_age_is_per_parameter() -> None:
    policy = ScoringPolicy(
        max_age_seconds={**ScoringPolicy().max_age_seconds, "consciousness": 3 * 3600.0}
    )
    state = make_state(
        observed_at={"consciousness": TWO_HOURS_AGO, "heart_rate_bpm": TWO_HOURS_AGO}
    )
    assessment = run(state, policy)
    assert sub_score(assessment, "consciousness").status == "scored"
    assert assessment.stale == ["heart_rate_bpm"]


def test_incomplete_score_with_partial_aggregate_7_is_high() -> None:
    state = make_state(
        temperature_celsius=None,
        respiratory_rate_per_min=25.0,  # 3
        systolic_bp_mmhg=85.0,  # 3
        heart_rate_bpm=95.0,  # 1
    )
    assessment = run(state)
    assert assessment.complete is False
    assert assessment.missing == ["temperature_celsius"]
    assert (assessment.aggregate, assessment.band) == (7, Band.HIGH)
    assert assessment.clinical_response == INCOMPLETE_PREFIX + RESPONSE_HIGH


def test_incomplete_score_with_a_single_3_is_low_medium() -> None:
    assessment = run(make_state(temperature_celsius=None, heart_rate_bpm=35.0))
    assert (assessment.complete, assessment.band) == (False, Band.LOW_MEDIUM)


def test_incomplete_score_with_partial_aggregate_4_has_no_band() -> None:
    state = make_state(consciousness=None, respiratory_rate_per_min=22.0, supplemental_oxygen=True)
    assessment = run(state)
    assert (assessment.aggregate, assessment.complete, assessment.band) == (4, False, None)


def test_scale_2_scores_spo2_88_to_92_and_high_on_air_as_0() -> None:
    policy = ScoringPolicy(spo2_scale=2)
    for percent in (88.0, 92.0, 97.0):
        assessment = run(make_state(spo2_percent=percent), policy)
        assert sub_score(assessment, "spo2_percent").points == 0
        assert assessment.spo2_scale == 2
    assert sub_score(run(make_state(spo2_percent=88.0)), "spo2_percent").points == 3


def test_scale_2_scores_high_spo2_on_oxygen() -> None:
    state = make_state(spo2_percent=97.0, supplemental_oxygen=True)
    assessment = run(state, ScoringPolicy(spo2_scale=2))
    assert sub_score(assessment, "spo2_percent").points == 3
    assert assessment.aggregate == 5
    assert sub_score(run(state), "spo2_percent").points == 0


def test_scale_2_without_oxygen_status_leaves_spo2_missing() -> None:
    state = make_state(supplemental_oxygen=None)
    assessment = run(state, ScoringPolicy(spo2_scale=2))
    assert assessment.missing == ["spo2_percent", "supplemental_oxygen"]
    assert sub_score(assessment, "spo2_percent").points is None
    assert run(state).missing == ["supplemental_oxygen"]


def test_scale_2_with_stale_oxygen_status_leaves_spo2_stale() -> None:
    state = make_state(observed_at={"supplemental_oxygen": TWO_HOURS_AGO})
    assessment = run(state, ScoringPolicy(spo2_scale=2))
    assert assessment.stale == ["spo2_percent", "supplemental_oxygen"]


def test_sub_score_carries_value_unit_and_observed_at() -> None:
    observed = NOW - timedelta(minutes=17)
    state = make_state(
        temperature_celsius=38.05,
        supplemental_oxygen=True,
        consciousness=Consciousness.VOICE,
        observed_at={"temperature_celsius": observed},
    )
    assessment = run(state)
    temperature = sub_score(assessment, "temperature_celsius")
    assert (temperature.value, temperature.unit, temperature.points) == (38.05, "Cel", 1)
    assert temperature.observed_at == observed
    oxygen = sub_score(assessment, "supplemental_oxygen")
    assert (oxygen.value, oxygen.unit, oxygen.points) == (True, None, 2)
    consciousness = sub_score(assessment, "consciousness")
    assert (consciousness.value, consciousness.points) == ("V", 3)
    units = {s.parameter: s.unit for s in assessment.sub_scores}
    assert units == {
        "respiratory_rate_per_min": "/min",
        "spo2_percent": "%",
        "supplemental_oxygen": None,
        "systolic_bp_mmhg": "mmHg",
        "heart_rate_bpm": "bpm",
        "consciousness": None,
        "temperature_celsius": "Cel",
    }


def test_policy_defaults_to_1_hour_for_every_parameter_and_scale_1() -> None:
    policy = ScoringPolicy()
    assert policy.max_age_seconds == dict.fromkeys(NEWS2_PARAMETERS, 3600.0)
    assert policy.spo2_scale == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"spo2_scale": 3}, {"max_age_seconds": {"diastolic_bp_mmhg": 60.0}}],
    ids=["scale-3", "unknown-parameter"],
)
def test_policy_rejects_invalid_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ScoringPolicy(**kwargs)


def test_scale_2_set_for_the_patient_is_honoured() -> None:
    base = make_state(spo2_percent=97.0, supplemental_oxygen=True)
    assert sub_score(run(base), "spo2_percent").points == 0  # scale 1: >= 96 scores 0
    assessed = run(base.model_copy(update={"spo2_scale": 2}))
    assert assessed.spo2_scale == 2
    assert sub_score(assessed, "spo2_percent").points == 3  # scale 2: >= 97 on oxygen scores 3


def test_a_reading_fusion_marked_stale_is_not_scored() -> None:
    base = make_state(heart_rate_bpm=140.0)
    heart = base.readings.heart_rate_bpm
    assert heart is not None
    readings = base.readings.model_copy(
        update={"heart_rate_bpm": heart.model_copy(update={"stale": True})}
    )
    assessed = run(base.model_copy(update={"readings": readings}))
    assert "heart_rate_bpm" in assessed.stale and not assessed.complete
    assert sub_score(assessed, "heart_rate_bpm").points is None
