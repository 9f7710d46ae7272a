"""The arithmetic behind the gauges: consumer lag, occupancy, oldest waits (no broker, no Redis)."""

from __future__ import annotations

import pytest

from schemas.vocabulary import BedStatus
from services.common.lag import PartitionOffsets, lag_by_topic
from services.scheduler.gauges import occupancy_ratio, oldest_wait_seconds


@pytest.mark.parametrize(
    ("fetched", "broker", "consumed", "lag"),
    [
        (10, 10, 10, 0),  # caught up
        (10, 10, 4, 6),
        (10, 7, 4, 6),  # the embedded broker's end offset is short of the end: the fetch wins
        (10, 15, 4, 11),  # a stage stuck in a handler fetches no more: the broker's end wins
        (None, 15, 4, 11),  # nothing fetched yet
        (None, None, 4, 0),  # end unknown: counts 0
        (10, 10, None, 0),  # position unknown: counts 0
        (3, 3, 5, 0),  # never negative
    ],
)
def test_lag_of_a_partition_is_the_larger_end_minus_the_committed_position(
    fetched: int | None, broker: int | None, consumed: int | None, lag: int
) -> None:
    partition = PartitionOffsets("t.events.raw", fetched, broker, consumed)
    assert lag_by_topic([partition], ["t.events.raw"]) == {"t.events.raw": lag}


def test_lag_sums_partitions_per_topic_and_reports_every_input_topic() -> None:
    partitions = [
        PartitionOffsets("a", 10, 10, 5),
        PartitionOffsets("a", 20, 20, 18),
        PartitionOffsets("b", 4, 4, 4),
    ]
    assert lag_by_topic(partitions, ["a", "b", "c"]) == {"a": 7, "b": 0, "c": 0}


@pytest.mark.parametrize(
    ("occupied", "others", "ratio"),
    [(0, 0, 0.0), (0, 4, 0.0), (3, 1, 0.75), (4, 0, 1.0)],
)
def test_occupancy_is_occupied_over_all_beds_and_zero_without_beds(
    occupied: int, others: int, ratio: float
) -> None:
    by_status = dict.fromkeys(BedStatus, 0) | {
        BedStatus.OCCUPIED: occupied,
        BedStatus.BLOCKED: others,
    }
    assert occupancy_ratio(by_status) == ratio


def test_oldest_wait_is_the_earliest_request_and_zero_when_nobody_waits() -> None:
    assert oldest_wait_seconds([], now=1000.0) == 0.0
    assert oldest_wait_seconds([900.0, 400.0, 990.0], now=1000.0) == 600.0
    assert oldest_wait_seconds([1001.0], now=1000.0) == 0.0  # a clock a little ahead
