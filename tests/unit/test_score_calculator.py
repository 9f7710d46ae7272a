"""`wardflow score`: the pure calculator, and the command as a person runs it."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.diagnosis.calculator import Observations, score
from services.launcher.processes import wardflow_command

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SICK = {
    "respiration_rate": 25,
    "spo2_percent": 91,
    "on_oxygen": True,
    "systolic_bp": 95,
    "pulse": 125,
    "consciousness": "V",
    "temperature_celsius": 38.6,
    "wbc": 14,
}


def test_a_deteriorating_patient_scores_high_and_positive() -> None:
    result = score(Observations.model_validate(SICK), NOW)
    # 3 (RR 25) + 3 (SpO2 91) + 2 (oxygen) + 2 (SBP 95) + 2 (HR 125) + 3 (V) + 1 (38.6 C) = 16
    assert (result["news2"]["total"], result["news2"]["band"]) == (16, "high")
    assert result["news2"]["complete"] is True
    assert result["news2"]["monitoring_frequency"] == "continuous monitoring of vital signs"
    assert result["news2"]["respond_within_minutes"] == 30
    assert result["news2"]["rules_version"] == "wardflow-rcp-news2-2017.1"
    assert (result["qsofa"]["total"], result["qsofa"]["positive"]) == (3, True)
    assert result["sirs"]["count"] == 4 and result["sirs"]["positive"] is True


def test_missing_fields_are_missing_never_normal() -> None:
    result = score(Observations.model_validate({"pulse": 70, "respiration_rate": 16}), NOW)
    assert result["news2"]["complete"] is False
    assert result["news2"]["band"] is None, "an incomplete low score is never shown as low"
    assert "spo2_percent" in result["news2"]["missing"]
    assert result["qsofa"]["positive"] is None


def test_scale_2_is_honoured() -> None:
    observations = {**SICK, "spo2_percent": 97, "spo2_scale": 2}
    sub_scores = score(Observations.model_validate(observations), NOW)["news2"]["sub_scores"]
    spo2 = next(s for s in sub_scores if s["parameter"] == "spo2_percent")
    assert spo2["points"] == 3  # scale 2: >= 97 on oxygen scores 3


@pytest.mark.parametrize(
    "bad", [{"pulse": "fast"}, {"consciousness": "X"}, {"spo2_scale": 3}, {"heart_rate": 80}]
)
def test_bad_input_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Observations.model_validate(bad)


def test_the_command_reads_stdin_and_prints_json() -> None:
    done = subprocess.run(
        [*wardflow_command(), "score"], input=json.dumps(SICK), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["news2"]["total"] == 16 and printed["qsofa"]["total"] == 3
    refused = subprocess.run(
        [*wardflow_command(), "score"], input='{"pulse": "fast"}', capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 2 and "pulse" in refused.stderr
