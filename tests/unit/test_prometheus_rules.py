"""deploy/prometheus/ checked by Prometheus's own tool: the config and rules are valid, and the
alert rules pass their unit tests (deploy/prometheus/tests/), which must give every alert a case
where it fires and one where it stays quiet.

promtool comes with Prometheus (Debian: `apt-get install prometheus`; `.ci/run` installs it). The
promtool tests are skipped only when it is not on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
PROMTOOL = shutil.which("promtool")

needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found on PATH: install Prometheus (Debian: apt-get install prometheus)",
)


def promtool(*args: str | Path) -> str:
    assert PROMTOOL is not None
    done = subprocess.run(
        [PROMTOOL, *map(str, args)],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


@needs_promtool
def test_prometheus_config_is_valid() -> None:
    assert "SUCCESS" in promtool("check", "config", CONFIG)


@needs_promtool
def test_alert_rules_are_valid() -> None:
    assert RULE_FILES
    output = promtool("check", "rules", *RULE_FILES)
    assert f"SUCCESS: {len(alerts())} rules found" in output


@needs_promtool
def test_alert_rules_pass_their_unit_tests() -> None:
    assert RULE_TESTS
    assert "SUCCESS" in promtool("test", "rules", *RULE_TESTS)


def test_every_alert_says_what_to_do_and_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("for"), f"{name}: a `for:` keeps one bad scrape from paging"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
        assert len(rule["annotations"]["description"]) > 80, f"{name}: say what to do"
    assert set(names) <= firing, f"never shown firing: {set(names) - firing}"
    assert set(names) <= quiet, f"never shown quiet: {set(names) - quiet}"
