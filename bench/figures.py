"""The bench's pure arithmetic: percentiles, timetables, backlog trends, the rules of a rate sweep
(sustained, clearly not, when to stop, the maximum) and the loss account of a stage.

Standard library only, no I/O and no clock, so every rule is tested in tests/unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SUSTAINED_FRACTION = 0.95
"""A rate is sustained when at least this share of it got through the pipeline's last hop..."""
BACKLOG_GROWTH_FRACTION = 0.05
"""...and no stage's backlog grew faster than this share of the records reaching that stage..."""
BACKLOG_GROWTH_FLOOR_PER_SECOND = 2.0
"""...or than this many records/s, whichever is larger (a trickle's noise is not a backlog)."""
CLEARLY_FRACTION = 0.90
"""Under this share (or with a backlog that did not drain) a rate is clearly not sustained."""


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max in milliseconds (nearest rank: the smallest sample with at least
    that share of the samples at or below it); None for each when there is no sample."""
    ordered, points = sorted(seconds), {"p50": 0.50, "p95": 0.95, "p99": 0.99, "max": 1.0}
    return {
        name: round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 2) if ordered else None
        for name, q in points.items()
    }


def slice_counts(per_second: float, seconds: float, slice_seconds: float) -> list[int]:
    """How many events are due in each slice of an open-loop timetable: after slice i the running
    total is floor((i + 1) x slice x rate), so the rate holds exactly and no slice is skipped."""
    slices = max(1, round(seconds / slice_seconds))
    totals = [math.floor((i + 1) * slice_seconds * per_second + 1e-9) for i in range(slices)]
    return [total - previous for previous, total in zip([0, *totals], totals, strict=False)]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (time, value) points, in value per time unit; 0 for fewer than two
    distinct times."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


@dataclass(frozen=True)
class Verdict:
    """What one offered rate showed: sustained or not, why not, and whether clearly not."""

    sustained: bool
    clearly_not: bool
    reasons: tuple[str, ...] = ()


def judge(
    offered: float,
    through: float,
    backlog_growth: Mapping[str, float],
    inflow: Mapping[str, float],
    *,
    errors: int = 0,
    drained: bool = True,
) -> Verdict:
    """Sustained: `through` (events/s out of the last hop over the window) >= 95 % of `offered`,
    no stage's backlog grew (least-squares slope over the window, records/s) faster than 5 % of
    its `inflow` (records/s reaching it; at least 2 records/s), every request was accepted, and
    everything drained after the last send. Clearly not: under 90 %, or not drained."""
    reasons: list[str] = []
    if through < SUSTAINED_FRACTION * offered:
        reasons.append(f"through {through:,.0f}/s < {SUSTAINED_FRACTION:.0%} of {offered:,.0f}/s")
    for stage, growth in backlog_growth.items():
        allowed = max(BACKLOG_GROWTH_FRACTION * inflow.get(stage, 0.0),
                      BACKLOG_GROWTH_FLOOR_PER_SECOND)  # fmt: skip
        if growth > allowed:
            reasons.append(f"{stage} backlog grew {growth:,.0f}/s")
    if errors:
        reasons.append(f"{errors} requests failed")
    if not drained:
        reasons.append("backlog not drained")
    clearly = through < CLEARLY_FRACTION * offered or not drained
    return Verdict(not reasons, clearly, tuple(reasons))


def should_stop(verdicts: Sequence[Verdict]) -> bool:
    """Stop a sweep (rates in increasing order) at the first rate that clearly cannot be
    sustained, or after two rates in a row that were not (a marginal miss may be noise)."""
    if not verdicts:
        return False
    last = verdicts[-1]
    if last.clearly_not:
        return True
    return len(verdicts) >= 2 and not last.sustained and not verdicts[-2].sustained


@dataclass
class Ladder:
    """One system's sweep: its offered rates in increasing order, taken one at a time
    (`next_rate`, then `record` the verdict and the seconds it took). It ends at a stop verdict
    (`should_stop`) once past `always_up_to`, or when `budget_seconds` are spent: no new rate
    starts after that (`cut_by_budget` says so when rates were left)."""

    rates: tuple[float, ...]
    budget_seconds: float
    always_up_to: float = 0.0
    verdicts: list[Verdict] = field(default_factory=list)
    spent_seconds: float = 0.0
    stopped: bool = False
    cut_by_budget: bool = False

    def next_rate(self) -> float | None:
        if self.stopped or len(self.verdicts) >= len(self.rates):
            return None
        rate = self.rates[len(self.verdicts)]
        if self.verdicts and rate > self.always_up_to and self.spent_seconds > self.budget_seconds:
            self.stopped = self.cut_by_budget = True
            return None
        return rate

    def record(self, verdict: Verdict, seconds: float) -> None:
        self.verdicts.append(verdict)
        self.spent_seconds += seconds
        rate = self.rates[len(self.verdicts) - 1]
        if should_stop(self.verdicts) and rate >= self.always_up_to:
            self.stopped = True


@dataclass(frozen=True)
class RatePoint:
    offered: float
    through: float
    sustained: bool


def max_sustained(points: Sequence[RatePoint]) -> RatePoint | None:
    """The sustained point with the highest offered rate (None when none was): its `through` is
    the maximum sustained throughput; a lower unsustained rate does not disqualify it."""
    sustained = [point for point in points if point.sustained]
    return max(sustained, key=lambda point: point.offered, default=None)


@dataclass(frozen=True)
class StageAccount:
    """Where the records that reached one stage went. `lost` is what nobody accounts for: not
    passed on or taken in (`processed`), not dropped as a duplicate, not in the dead-letter topic,
    not dropped for a counted reason (e.g. no vital sign left) and not still queued for the stage
    when the account was taken (a backlog that had not drained). It must be 0; negative means
    something was counted twice (a redelivery)."""

    stage: str
    received: int
    processed: int
    deduplicated: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    queued: int = 0

    @property
    def lost(self) -> int:
        accounted = (
            self.processed + self.deduplicated + self.dead_lettered + self.dropped + self.queued
        )
        return self.received - accounted


def ids_account(
    stage: str,
    received: set[str],
    passed: set[str],
    dead_lettered: set[str],
    *,
    deduplicated: int = 0,
    dropped: int = 0,
    queued: int = 0,
) -> StageAccount:
    """A stage whose outputs carry the input's event id: every id received is found downstream,
    in the dead-letter topic, or among the counted duplicates and drops (which carry no id)."""
    return StageAccount(
        stage,
        received=len(received),
        processed=len(received & passed),
        deduplicated=deduplicated,
        dead_lettered=len(received & dead_lettered - passed),
        dropped=dropped,
        queued=queued,
    )
