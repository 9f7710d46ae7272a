"""The bench's pure rules: percentiles, timetables, backlog trend, sustained, stop, max, losses."""

from __future__ import annotations

import pytest

from bench.figures import (
    Ladder,
    RatePoint,
    StageAccount,
    Verdict,
    ids_account,
    judge,
    latency_summary,
    max_sustained,
    should_stop,
    slice_counts,
    slope,
)
from bench.pipeline import checks_of
from bench.probe import Flow, Sample, parse_counters, total
from bench.report import latest


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], {"p50": None, "p95": None, "p99": None, "max": None}),
        ([0.005], {"p50": 5.0, "p95": 5.0, "p99": 5.0, "max": 5.0}),
        # nearest rank over 1..100 ms: the k-th smallest for p(k)
        (
            [i / 1000 for i in range(100, 0, -1)],
            {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0},
        ),
        # 10 samples: p99 is the largest, p50 the fifth
        ([i / 1000 for i in range(1, 11)], {"p50": 5.0, "p95": 10.0, "p99": 10.0, "max": 10.0}),
    ],
)
def test_latency_summary_is_nearest_rank_in_milliseconds(
    samples: list[float], expected: dict[str, float | None]
) -> None:
    assert latency_summary(samples) == expected


@pytest.mark.parametrize(
    ("rate", "seconds", "slice_seconds", "total"),
    [
        (250.0, 1.0, 0.02, 250),
        (1000.0, 2.0, 0.02, 2000),
        (333.0, 3.0, 0.02, 999),
        (5000.0, 0.5, 0.02, 2500),
    ],
)
def test_timetable_offers_the_rate_exactly(
    rate: float, seconds: float, slice_seconds: float, total: int
) -> None:
    counts = slice_counts(rate, seconds, slice_seconds)
    assert len(counts) == round(seconds / slice_seconds)
    assert sum(counts) == total
    assert max(counts) - min(counts) <= 1  # spread evenly, no burst


def test_slope_of_a_growing_backlog_is_its_growth_per_second() -> None:
    assert slope([(t, 100 + 40 * t) for t in range(10)]) == pytest.approx(40.0)
    assert slope([(t, 7.0) for t in range(10)]) == 0.0
    assert slope([(1.0, 5.0)]) == 0.0
    assert slope([(1.0, 5.0), (1.0, 9.0)]) == 0.0


SUSTAINED_CASES = [
    # offered, through, backlog growth, inflow, errors, drained -> sustained, clearly not
    (1000.0, 1000.0, {"fusion": 0.0}, {"fusion": 1000.0}, 0, True, True, False),
    (1000.0, 950.0, {"fusion": 0.0}, {"fusion": 1000.0}, 0, True, True, False),
    (1000.0, 949.0, {"fusion": 0.0}, {"fusion": 1000.0}, 0, True, False, False),
    (1000.0, 899.0, {"fusion": 0.0}, {"fusion": 1000.0}, 0, True, False, True),
    (1000.0, 990.0, {"fusion": 51.0}, {"fusion": 1000.0}, 0, True, False, False),
    (1000.0, 990.0, {"fusion": 50.0}, {"fusion": 1000.0}, 0, True, True, False),
    # a trickle (20 snapshots/s) may wobble by the 2 records/s floor
    (1000.0, 990.0, {"diagnosis": 1.9}, {"diagnosis": 20.0}, 0, True, True, False),
    (1000.0, 990.0, {"diagnosis": 2.1}, {"diagnosis": 20.0}, 0, True, False, False),
    (1000.0, 1000.0, {}, {}, 1, True, False, False),
    (1000.0, 1000.0, {}, {}, 0, False, False, True),
]


@pytest.mark.parametrize(
    ("offered", "through", "growth", "inflow", "errors", "drained", "sustained", "clearly"),
    SUSTAINED_CASES,
)
def test_a_rate_is_sustained_only_at_95_percent_with_no_growing_backlog(
    offered: float,
    through: float,
    growth: dict[str, float],
    inflow: dict[str, float],
    errors: int,
    drained: bool,
    sustained: bool,
    clearly: bool,
) -> None:
    verdict = judge(offered, through, growth, inflow, errors=errors, drained=drained)
    assert (verdict.sustained, verdict.clearly_not) == (sustained, clearly)
    assert bool(verdict.reasons) == (not sustained)


YES, MARGINAL, CLEARLY = Verdict(True, False), Verdict(False, False), Verdict(False, True)


@pytest.mark.parametrize(
    ("verdicts", "stop"),
    [
        ([], False),
        ([YES], False),
        ([YES, MARGINAL], False),  # a marginal miss may be noise: one more rate
        ([YES, MARGINAL, YES], False),
        ([YES, MARGINAL, MARGINAL], True),
        ([YES, CLEARLY], True),
        ([CLEARLY], True),
    ],
)
def test_sweep_stops_at_the_first_clear_miss_or_two_misses_in_a_row(
    verdicts: list[Verdict], stop: bool
) -> None:
    assert should_stop(verdicts) is stop


def climb(ladder: Ladder, verdicts: list[Verdict], seconds: float = 10.0) -> list[float]:
    """The rates a ladder runs when each rate gets the next verdict and takes `seconds`."""
    ran = []
    for verdict in verdicts:
        rate = ladder.next_rate()
        if rate is None:
            break
        ran.append(rate)
        ladder.record(verdict, seconds)
    return ran


def test_a_ladder_stops_as_the_sweep_rule_says() -> None:
    assert climb(Ladder((1, 2, 3, 4), 1e9), [YES, MARGINAL, MARGINAL, YES]) == [1, 2, 3]
    assert climb(Ladder((1, 2, 3, 4), 1e9), [YES, CLEARLY, YES, YES]) == [1, 2]
    assert climb(Ladder((1, 2), 1e9), [YES, YES, YES]) == [1, 2]  # then no rate is left


def test_a_ladder_runs_up_to_its_always_rate_whatever_the_verdicts() -> None:
    ladder = Ladder((500, 1000, 2000), 1e9, always_up_to=1000)
    assert climb(ladder, [CLEARLY, CLEARLY, YES]) == [500, 1000]


def test_a_ladder_starts_no_rate_once_its_budget_is_spent_and_says_so() -> None:
    ladder = Ladder((1000, 2000, 3000, 4000), budget_seconds=25, always_up_to=1000)
    assert climb(ladder, [YES, YES, YES, YES], seconds=10) == [1000, 2000, 3000]
    assert ladder.cut_by_budget
    done = Ladder((1000, 2000), budget_seconds=25)
    climb(done, [YES, YES], seconds=10)
    assert not done.cut_by_budget, "all rates ran: nothing was cut"


def test_max_sustained_is_the_sustained_point_at_the_highest_offered_rate() -> None:
    points = [
        RatePoint(250, 249, True),
        RatePoint(500, 470, False),  # a noisy miss below does not disqualify a higher rate
        RatePoint(1000, 991, True),
        RatePoint(2000, 1400, False),
    ]
    assert max_sustained(points) == RatePoint(1000, 991, True)
    assert max_sustained([RatePoint(250, 100, False)]) is None
    assert max_sustained([]) is None


def test_every_received_event_is_accounted_for_or_lost() -> None:
    account = StageAccount("cleaning", received=100, processed=90, deduplicated=3,
                           dead_lettered=5, dropped=1)  # fmt: skip
    assert account.lost == 1
    assert StageAccount("fusion", received=10, processed=11).lost == -1  # counted twice


def test_a_backlog_still_queued_is_not_counted_as_lost() -> None:
    assert StageAccount("fusion", received=100, processed=60, queued=40).lost == 0
    assert StageAccount("fusion", received=100, processed=60, queued=30).lost == 10


def test_ids_account_finds_each_id_downstream_or_dead_lettered() -> None:
    received = {"a", "b", "c", "d", "e"}
    account = ids_account("cleaning", received, passed={"a", "b", "x"}, dead_lettered={"c", "y"},
                          deduplicated=1)  # fmt: skip
    assert (account.processed, account.dead_lettered, account.lost) == (2, 1, 1)
    # an id both passed on and dead-lettered counts once
    assert ids_account("s", {"a"}, {"a"}, {"a"}).lost == 0


METRICS = """# HELP wardflow_events_in_total Events a stage received.
# TYPE wardflow_events_in_total counter
wardflow_events_in_total{stage="fusion",topic="events.clean"} 1234.0
wardflow_events_out_total{stage="fusion",topic="patients.state"} 56.0
wardflow_events_out_total{stage="fusion",topic="events.dlq"} 2.0
wardflow_processing_seconds_bucket{le="0.001",stage="fusion"} 10.0
wardflow_duplicates_dropped_total{reason="event_id",stage="cleaning"} 3.0
wardflow_duplicates_dropped_total{reason="same_reading",stage="cleaning"} 4.0
"""


def test_counters_are_read_from_a_metrics_page_and_summed_by_label() -> None:
    counters = parse_counters(METRICS)
    assert total(counters, "wardflow_events_in_total", topic="events.clean") == 1234.0
    assert total(counters, "wardflow_events_out_total", stage="fusion") == 58.0
    assert total(counters, "wardflow_duplicates_dropped_total") == 7.0
    assert total(counters, "wardflow_processing_seconds_bucket") == 0.0  # not a counter


def test_backlog_is_what_was_written_to_a_stage_minus_what_it_took_in() -> None:
    flow = Flow("diagnosis", (("fusion", "wardflow_events_out_total", "patients.state"),),
                (("diagnosis", "wardflow_events_in_total", "patients.state"),))  # fmt: skip
    diagnosis = 'wardflow_events_in_total{stage="diagnosis",topic="patients.state"} 50.0\n'
    sample = Sample(0.0, {"fusion": parse_counters(METRICS),
                          "diagnosis": parse_counters(diagnosis)}, {}, {})  # fmt: skip
    assert sample.backlog(flow) == 6.0


def _row(system: str, offered: float, through: float, sustained: bool, p99_ms: float) -> dict:
    return {"system": system, "offered_eps": offered, "sustained_eps": through,
            "sustained": sustained, "e2e_ms": {"p50": p99_ms / 2, "p99": p99_ms}}  # fmt: skip


def test_latest_json_headline_figures_and_targets() -> None:
    rows = [
        _row("pipeline", 500, 498, True, 40),
        _row("pipeline", 1000, 990, True, 150),
        _row("pipeline", 2000, 1200, False, 4000),
        _row("baseline", 1000, 1000, True, 20),
        _row("baseline", 2000, 1990, True, 30),
        _row("baseline", 3000, 2000, False, 900),
    ]
    machine = {"date": "2026-01-01T00:00:00+00:00", "git_commit": "abc1234"}
    summary = latest({"scenarios": rows, "machine": machine, "options": {}, "checks": {}})
    assert summary["pipeline"]["max_throughput_eps"] == 990
    assert summary["pipeline"]["p99_seconds_at_1000_eps"] == 0.15
    assert summary["baseline"]["max_throughput_eps"] == 1990
    assert summary["ratio"] == round(990 / 1990, 3)
    assert [t["met"] for t in summary["targets"]] == [False, True]  # 50 % of the relay; 150 ms
    assert (summary["date"], summary["commit"]) == (machine["date"], "abc1234")


def test_no_sustained_rate_means_no_maximum_and_no_ratio() -> None:
    rows = [_row("pipeline", 250, 100, False, 5000), _row("baseline", 250, 250, True, 10)]
    summary = latest({"scenarios": rows, "machine": {"date": "d", "git_commit": "c"},
                      "options": {}, "checks": {}})  # fmt: skip
    assert summary["pipeline"]["max_throughput_eps"] is None
    assert summary["pipeline"]["p99_seconds_at_1000_eps"] is None  # 1,000/s was not run
    assert summary["ratio"] is None
    assert summary["targets"][0]["met"] is None


def test_a_relay_baseline_that_could_not_run_leaves_the_pipeline_reported_without_a_ratio() -> None:
    rows = [_row("pipeline", 1000, 995, True, 150), _row("pipeline", 2000, 1990, True, 300)]
    rows[0]["events_lost"] = 0
    rows[1]["events_lost"] = 0
    checks = checks_of(rows, "RuntimeError: relay-3 exited")
    assert checks == {
        "pipeline 1,000/s: events lost": 0,
        "pipeline 2,000/s: events lost": 0,
        "baseline": "could not run, so no ratio: RuntimeError: relay-3 exited",
    }
    assert "baseline" not in checks_of(rows, None)
    summary = latest({"scenarios": rows, "machine": {"date": "d", "git_commit": "c"},
                      "options": {}, "checks": checks})  # fmt: skip
    assert summary["pipeline"]["max_throughput_eps"] == 1990
    assert summary["baseline"]["max_throughput_eps"] is None
    assert summary["ratio"] is None and summary["targets"][0]["met"] is None
    assert summary["checks"]["baseline"].startswith("could not run")
