"""The reviewed rules file: the shipped file is the published chart, and bad files are refused
with the entry at fault named."""

from __future__ import annotations

import copy
import os
import subprocess
import tomllib
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from schemas.assessments import AssessmentIssued
from schemas.care import CarePlan, ParameterOverride
from schemas.patients import (
    ConsciousnessReading,
    NumericReading,
    OxygenReading,
    PatientReadings,
    PatientStateUpdated,
)
from schemas.vocabulary import Band, Consciousness
from services.diagnosis.domain import ScoringPolicy, assess
from services.diagnosis.rules import DEFAULT_RULES, RulesError, load_rules, rules_from_dict
from services.launcher.processes import wardflow_command

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def shipped() -> dict[str, Any]:
    text = resources.files("services.diagnosis").joinpath("rules.toml").read_text()
    return tomllib.loads(text)


def test_the_shipped_rules_load_and_carry_a_version() -> None:
    assert DEFAULT_RULES.version == "wardflow-rcp-news2-2017.1"
    assert DEFAULT_RULES.responses.medium.respond_within_minutes == 60
    assert DEFAULT_RULES.responses.high.respond_within_minutes == 30
    assert [p.id for p in DEFAULT_RULES.pathways] == ["sepsis-screen-and-bundle"]


def test_a_hospital_file_is_read_from_its_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "\n".join(
            [
                'version = "st-elsewhere-3"',
                resources.files("services.diagnosis")
                .joinpath("rules.toml")
                .read_text()
                .replace('version = "wardflow-rcp-news2-2017.1"', ""),
            ]
        )
    )
    assert load_rules(str(path)).version == "st-elsewhere-3"


def edit(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(shipped())
    *parents, last = path.split(".")
    target: Any = data
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "news2.heart_rate_bpm.rows",
            [[50, 1], [40, 3]],
            "news2.heart_rate_bpm: Value error, row upper bounds must be strictly ascending",
        ),
        ("news2.heart_rate_bpm.above", 4, "news2.heart_rate_bpm.above"),
        ("news2.temperature_celsius.rows", [], "news2.temperature_celsius.rows"),
        ("news2.bands.high_from", 5, "high_from must be above medium_from"),
        ("news2.points.not_alert", DELETE, "news2.points.not_alert: Field required"),
        ("responses.high.respond_within_minutes", DELETE, "go together"),
        ("responses.medium.respond_within_minutes", 0, "responses.medium.respond_within_minutes"),
        ("alerting.improvement_hold_minutes", -1, "alerting.improvement_hold_minutes"),
        ("bed_requests.0.level_of_care", "ward", "bed_requests[0].level_of_care"),
        ("bed_requests.0.band", "low", "bed_requests[0].band"),
        ("pathways.0.actions", [], "pathways[0].actions"),
        ("pathways.0.when_any", ["lactate"], "pathways[0].when_any[0]"),
        ("pathways.0.actions.0.source", "", "pathways[0].actions[0].source"),
        ("version", "", "version"),
        ("surprise", 1, "surprise: Extra inputs are not permitted"),
    ],
)
def test_an_invalid_rules_file_is_refused_naming_the_entry(
    path: str, value: object, message: str
) -> None:
    with pytest.raises(RulesError) as refused:
        rules_from_dict(edit(path, value), "hospital-rules.toml")
    assert str(refused.value).startswith("hospital-rules.toml: ")
    assert message in str(refused.value)


def test_a_missing_or_broken_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match=r"^absent\.toml: cannot read"):
        load_rules(str(tmp_path / "absent.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("version = \n")
    with pytest.raises(RulesError, match=r"^broken\.toml: not valid TOML"):
        load_rules(str(broken))


def test_the_service_refuses_to_start_on_a_bad_rules_file(tmp_path: Path) -> None:
    broken = tmp_path / "hospital.toml"
    text = resources.files("services.diagnosis").joinpath("rules.toml").read_text()
    broken.write_text(text.replace("medium_from = 5", "medium_from = 8"))
    env = {**os.environ, "WARDFLOW_RULES_FILE": str(broken), "WARDFLOW_METRICS_PORT": "0"}
    done = subprocess.run(
        [*wardflow_command(), "service", "diagnosis"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "diagnosis: rules file: hospital.toml: news2.bands: Value error, high_from must be above"
        " medium_from"
    )


def test_a_hospital_chart_changes_the_score() -> None:
    data = edit("news2.heart_rate_bpm.rows", [[40, 3], [50, 1], [100, 0], [110, 1], [130, 2]])
    rules = rules_from_dict(data)
    state = full_state(heart_rate_bpm=95)
    assert score(state).sub_scores[4].points == 1
    assert score(state, ScoringPolicy(rules=rules)).sub_scores[4].points == 0


# --- overrides and ceiling of care in the assessment ------------------------------------------


def full_state(care: CarePlan | None = None, **values: float) -> PatientStateUpdated:
    numbers = {
        "respiratory_rate_per_min": 16.0,
        "spo2_percent": 97.0,
        "systolic_bp_mmhg": 120.0,
        "heart_rate_bpm": 70.0,
        "temperature_celsius": 37.0,
        **values,
    }
    at = NOW - timedelta(minutes=5)
    return PatientStateUpdated(
        event_id=uuid4(),
        occurred_at=at,
        recorded_at=at,
        source="fusion",
        patient_id="P1",
        version=1,
        ward="WARD-A",
        readings=PatientReadings(
            **{k: NumericReading(value=v, observed_at=at, source="m") for k, v in numbers.items()},
            supplemental_oxygen=OxygenReading(
                on_supplemental_oxygen=False, observed_at=at, source="m"
            ),
            consciousness=ConsciousnessReading(
                level=Consciousness.ALERT, observed_at=at, source="m"
            ),
        ),
        care=care or CarePlan(),
        cause_recorded_at=at,
    )


def score(state: PatientStateUpdated, policy: ScoringPolicy | None = None) -> AssessmentIssued:
    return assess(state, NOW, policy or ScoringPolicy(), event_id=uuid4(), source="diagnosis")


def override(low: float, high: float, expires_in_minutes: float) -> CarePlan:
    return CarePlan(
        overrides=[
            ParameterOverride(
                parameter="heart_rate_bpm",
                low=low,
                high=high,
                expires_at=NOW + timedelta(minutes=expires_in_minutes),
                set_by_role="cardiology registrar",
                set_at=NOW - timedelta(hours=1),
            )
        ]
    )


@pytest.mark.parametrize(
    ("heart_rate", "care", "points", "overridden"),
    [
        (115.0, override(100, 120, 60), 0, True),  # inside the accepted range: scores 0
        (120.0, override(100, 120, 60), 0, True),  # the range is inclusive
        (121.0, override(100, 120, 60), 2, False),  # outside it: the chart applies
        (115.0, override(100, 120, 0), 2, False),  # expired exactly now: the chart applies
        (115.0, None, 2, False),
    ],
)
def test_a_clinicians_override_scores_zero_inside_its_range_until_it_expires(
    heart_rate: float, care: CarePlan | None, points: int, overridden: bool
) -> None:
    assessment = score(full_state(care, heart_rate_bpm=heart_rate))
    pulse = next(s for s in assessment.sub_scores if s.parameter == "heart_rate_bpm")
    assert pulse.points == points
    assert (pulse.override is not None) is overridden
    if pulse.override is not None:
        assert pulse.override.set_by_role == "cardiology registrar"
        assert pulse.override.expires_at == NOW + timedelta(minutes=60)


@pytest.mark.parametrize(
    ("ceiling", "note"),
    [
        ("general", "Ceiling of care: ward-based care only (set by consultant); no HDU/ICU bed"),
        ("hdu", "Ceiling of care: not for ICU (set by consultant); an HDU bed at most"),
        ("icu", None),
    ],
)
def test_the_response_says_why_when_a_ceiling_of_care_applies(
    ceiling: str, note: str | None
) -> None:
    care = CarePlan(ceiling=ceiling, ceiling_set_by_role="consultant")
    # RR 25 (3) + SBP 90 (3) + HR 131 (3) = 9: high
    sick = full_state(care, respiratory_rate_per_min=25, systolic_bp_mmhg=90, heart_rate_bpm=131)
    assessment = score(sick)
    assert assessment.band is Band.HIGH
    assert assessment.clinical_response.startswith("Emergency response")
    assert (
        (note in assessment.clinical_response)
        if note
        else "Ceiling" not in (assessment.clinical_response)
    )
    assert assessment.rules_version == DEFAULT_RULES.version
    assert assessment.monitoring_frequency == "continuous monitoring of vital signs"
    assert assessment.respond_within_minutes == 30
