"""The scheduler's reviewed policy file: critical-care priority by acuity with aging, the tariff
and its cost estimates, the fairness metric's labels, and bad files refused naming the entry.

The expected credits are written out by hand from the shipped policy.toml (high 240 min, medium
60, low_medium 15, low 0, plus 5 min per NEWS2 point), not derived from the code."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from schemas.beds import BedReserved
from schemas.vocabulary import CAPABILITIES, Band, LevelOfCare
from services.cli import app
from services.common.hospital import layout_from_dict
from services.scheduler.domain import (
    acuity_credit_seconds,
    cost_estimate,
    placement_origin,
    queue_score,
    wait_band,
)
from services.scheduler.policy import (
    DEFAULT_POLICY,
    PolicyError,
    configured_policy,
    load_policy,
    policy_from_dict,
)

PRIORITY = DEFAULT_POLICY.priority
T = 1_700_000_000.0  # a request time, epoch seconds
MIN = 60.0


@pytest.mark.parametrize(
    ("band", "aggregate", "minutes"),
    [
        (None, None, 0),  # a record from before priorities: FIFO
        (None, 9, 0),
        ("", 9, 0),
        (Band.LOW, 0, 0),
        (Band.LOW, 4, 20),
        (Band.LOW_MEDIUM, 0, 15),
        (Band.LOW_MEDIUM, 3, 30),
        (Band.MEDIUM, 0, 60),
        (Band.MEDIUM, 5, 85),
        (Band.HIGH, 0, 240),
        (Band.HIGH, 7, 275),
        ("high", 7, 275),  # as stored in the request record
        (Band.HIGH, 19, 335),
        (Band.HIGH, 20, 340),  # NEWS2's maximum
        (Band.HIGH, 21, 340),  # above it counts as 20
        (Band.HIGH, 99, 340),
        (Band.MEDIUM, -1, 60),  # below 0 counts as 0
        (Band.MEDIUM, None, 60),
    ],
)
def test_acuity_credit(band: Any, aggregate: int | None, minutes: float) -> None:
    assert acuity_credit_seconds(band, aggregate, PRIORITY) == minutes * MIN


# (earlier request, later request, how much earlier in seconds, who is served first).
# high/7 is credited 275 min, medium/5 85 min: the difference is 190 min = 11 400 s.
HIGH7, MEDIUM5, MEDIUM6, LOW0 = (Band.HIGH, 7), (Band.MEDIUM, 5), (Band.MEDIUM, 6), (Band.LOW, 0)


@pytest.mark.parametrize(
    ("earlier", "later", "gap", "first"),
    [
        (MEDIUM5, HIGH7, 0, "later"),  # same time: acuity first
        (MEDIUM5, HIGH7, 1, "later"),
        (MEDIUM5, HIGH7, 11_399, "later"),  # waited less than the difference
        (MEDIUM5, HIGH7, 11_400, "tie"),  # exactly the difference (the queue: higher credit)
        (MEDIUM5, HIGH7, 11_401, "earlier"),  # aging: waited longer than the difference
        (MEDIUM5, HIGH7, 86_400, "earlier"),
        (MEDIUM5, MEDIUM6, 299, "later"),  # one NEWS2 point is worth 5 minutes
        (MEDIUM5, MEDIUM6, 300, "tie"),
        (MEDIUM5, MEDIUM6, 301, "earlier"),
        (HIGH7, HIGH7, 1, "earlier"),  # same acuity: waiting time
        (HIGH7, MEDIUM5, 0, "earlier"),
        (LOW0, HIGH7, 16_500, "tie"),  # low/0 vs high/7: 275 min = 16 500 s
        (LOW0, HIGH7, 16_499, "later"),
        (LOW0, HIGH7, 16_501, "earlier"),
    ],
)
def test_queue_order_by_acuity_then_waiting_time_with_aging(
    earlier: tuple[Band, int], later: tuple[Band, int], gap: float, first: str
) -> None:
    a = queue_score(T, *earlier, PRIORITY)
    b = queue_score(T + gap, *later, PRIORITY)
    assert {"earlier": a < b, "later": b < a, "tie": a == b}[first], (a, b)


def test_the_score_is_the_request_time_without_acuity() -> None:
    assert queue_score(T, None, None, PRIORITY) == T


# --- the policy file ----------------------------------------------------------------------------


def _policy(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEFAULT_POLICY.model_dump_json())
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = data
        for part in parents:
            node = node[part]
        if value is None:
            del node[leaf]
        else:
            node[leaf] = value
    return data


def test_the_shipped_policy_is_the_reviewed_one() -> None:
    assert DEFAULT_POLICY.tariff.currency == "GBP"
    assert DEFAULT_POLICY.tariff.per_day.amount(LevelOfCare.ICU) == Decimal("2000.00")
    # Every capability a bed can offer (and a patient need) is priced.
    assert set(DEFAULT_POLICY.tariff.equipment) == set(CAPABILITIES)
    assert DEFAULT_POLICY.tariff.equipment["ventilator"].per_day == Decimal("350.00")
    assert policy_from_dict(_policy()) == DEFAULT_POLICY


@pytest.mark.parametrize(
    ("changes", "entry"),
    [
        ({"tariff__per_day__icu": None}, "tariff.per_day.icu: Field required"),
        ({"tariff__per_day__hdu": "-1"}, "tariff.per_day.hdu"),
        ({"tariff__per_day__hdu": "10.005"}, "tariff.per_day.hdu"),  # more than 2 decimals
        ({"tariff__currency": "gbp"}, "tariff.currency"),
        ({"tariff__version": ""}, "tariff.version"),
        ({"tariff__per_day__ward": "1"}, "tariff.per_day.ward: Extra inputs"),
        (
            {"tariff__equipment": {"Ventilator!": {"per_day": "1", "description": "x"}}},
            "tariff.equipment.Ventilator!",
        ),
        ({"tariff__equipment": {"vent": {"per_day": "1"}}}, "tariff.equipment.vent.description"),
        ({"priority__band_credit_minutes__high": 30}, "priority.band_credit_minutes: Value error"),
        ({"priority__band_credit_minutes__low": -1}, "priority.band_credit_minutes.low"),
        ({"priority__band_credit_minutes__medium": 2000}, "priority.band_credit_minutes.medium"),
        ({"priority__aggregate_credit_minutes": 61}, "priority.aggregate_credit_minutes"),
        ({"priority": None}, "priority: Field required"),
        ({"versoin": "x"}, "versoin: Extra inputs"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_entry(changes: dict[str, Any], entry: str) -> None:
    with pytest.raises(PolicyError) as error:
        policy_from_dict(_policy(**changes), "policy.toml")
    assert str(error.value).startswith("policy.toml: ")
    assert entry in str(error.value)


def test_a_policy_file_is_read_exactly(tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "services/scheduler/policy.toml").read_text()
    text = text.replace("icu = 2000.00", "icu = 1999.99")
    text = text.replace("per_day = 350.00", "per_day = 0.10")
    path = tmp_path / "mine.toml"
    path.write_text(text)
    policy = load_policy(str(path))
    assert policy.tariff.per_day.icu == Decimal("1999.99")
    assert policy.tariff.equipment["ventilator"].per_day == Decimal("0.10")


def test_unreadable_or_invalid_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"^absent\.toml: cannot read"):
        load_policy(str(tmp_path / "absent.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("version = ")
    with pytest.raises(PolicyError, match=r"^broken\.toml: not valid TOML"):
        load_policy(str(broken))


def test_the_environment_names_the_policy_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert configured_policy() is DEFAULT_POLICY
    path = tmp_path / "p.toml"
    path.write_text(
        (Path(__file__).parents[2] / "services/scheduler/policy.toml")
        .read_text()
        .replace('version = "2025-1"', 'version = "local-7"')
    )
    monkeypatch.setenv("WARDFLOW_SCHEDULER_POLICY_FILE", str(path))
    assert configured_policy().version == "local-7"


def test_the_scheduler_refuses_to_start_with_a_bad_policy(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('version = "x"\n')
    result = CliRunner().invoke(
        app, ["service", "scheduler"], env={"WARDFLOW_SCHEDULER_POLICY_FILE": str(path)}
    )
    assert result.exit_code == 2
    assert "scheduler: policy file: bad.toml: " in result.output
    assert "priority: Field required" in result.output
    assert "tariff: Field required" in result.output


# --- cost estimates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "per_day"),
    [
        (LevelOfCare.EMERGENCY, "250.00"),
        (LevelOfCare.GENERAL, "450.00"),
        (LevelOfCare.HDU, "1100.00"),
        (LevelOfCare.ICU, "2000.00"),
    ],
)
def test_cost_estimate_per_bed_day_by_level_of_care(level: LevelOfCare, per_day: str) -> None:
    estimate = cost_estimate(DEFAULT_POLICY.tariff, level)
    assert (estimate.tariff_version, estimate.level_of_care) == ("illustrative-2025", level)
    assert (estimate.per_day, estimate.currency) == (Decimal(per_day), "GBP")
    assert estimate.basis == (
        f"one {level.value} bed-day at {per_day} GBP (tariff illustrative-2025);"
        " per day of stay, the length of stay is not known"
    )


def test_cost_estimate_with_equipment_add_ons_is_exact() -> None:
    data = _policy(
        tariff__equipment={
            "ventilator": {"per_day": "0.10", "description": "invasive ventilation"},
            "pump": {"per_day": "0.20", "description": "infusion pump"},
        }
    )
    tariff = policy_from_dict(data).tariff
    estimate = cost_estimate(tariff, LevelOfCare.ICU, ["ventilator", "pump"])
    assert estimate.per_day == Decimal("2000.30")  # no 0.30000000000000004
    assert "plus ventilator at 0.10 GBP per day, plus pump at 0.20 GBP per day" in estimate.basis
    # A need the tariff does not price is named, and adds nothing.
    unpriced = cost_estimate(tariff, LevelOfCare.ICU, ["ventilator", "dialysis"])
    assert unpriced.per_day == Decimal("2000.10")
    assert unpriced.basis.startswith(
        "one icu bed-day at 2000.00 GBP, plus ventilator at 0.10 GBP per day, dialysis not priced"
    )


def test_the_estimate_is_a_decimal_string_on_the_wire() -> None:
    from datetime import UTC, datetime
    from uuid import uuid4

    now = datetime.now(UTC)
    reserved = BedReserved(
        event_id=uuid4(),
        occurred_at=now,
        recorded_at=now,
        source="wardflow-scheduler",
        patient_id="P1",
        ward="ICU",
        bed="ICU-01",
        request_id=uuid4(),
        level_of_care=LevelOfCare.ICU,
        wait_seconds=0,
        cause_event_id=uuid4(),
        cost_estimate=cost_estimate(DEFAULT_POLICY.tariff, LevelOfCare.ICU),
    )
    wire = json.loads(reserved.model_dump_json())
    assert wire["cost_estimate"]["per_day"] == "2000.00"
    assert BedReserved.model_validate(wire) == reserved
    del wire["cost_estimate"]  # a decision from before the tariff still reads
    assert BedReserved.model_validate(wire).cost_estimate is None


# --- the fairness metric's labels ---------------------------------------------------------------

LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "ED", "level_of_care": "emergency", "beds": 2},
            {"id": "W1", "level_of_care": "general", "beds": 2},
            {"id": "ICU", "level_of_care": "icu", "beds": 1},
        ]
    }
)


@pytest.mark.parametrize(
    ("band", "label"),
    [
        ("low", "low"),
        ("low_medium", "low_medium"),
        ("medium", "medium"),
        ("high", "high"),
        (None, "unknown"),
        ("", "unknown"),
        ("P123", "unknown"),
    ],
)
def test_wait_band_labels_come_from_a_fixed_set(band: str | None, label: str) -> None:
    assert wait_band(band) == label


@pytest.mark.parametrize(
    ("from_ward", "origin"),
    [
        (None, "ward"),
        ("ED", "emergency"),
        ("W1", "transfer"),
        ("ICU", "transfer"),
        ("X", "transfer"),
    ],
)
def test_placement_origin(from_ward: str | None, origin: str) -> None:
    assert placement_origin(LAYOUT, from_ward) == origin
