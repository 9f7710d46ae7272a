"""`BatchHistogram` exposes what prometheus_client's `Histogram` exposes for the same values."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from services.common.batch_histogram import BatchHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)
VALUES = [0.0, 0.0005, 0.001, 0.0010001, 0.01, 0.05, 0.1, 0.5, 1.0, 1.5, 100.0]


def exposition(kind: str, batches: list[list[float]]) -> list[str]:
    registry = CollectorRegistry()
    if kind == "batch":
        histogram = BatchHistogram("lag_seconds", "Lag.", ["stage"], BUCKETS, registry)
        for batch in batches:
            histogram.labels("fusion").observe_many(batch)
    else:
        reference = Histogram("lag_seconds", "Lag.", ["stage"], buckets=BUCKETS, registry=registry)
        for batch in batches:
            for value in batch:
                reference.labels("fusion").observe(value)
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if "lag_seconds_created" not in line  # a series only the reference has, by default
    ]


@pytest.mark.parametrize(
    "batches",
    [[VALUES], [VALUES[:3], [], VALUES[3:]], [[v] for v in VALUES], []],
    ids=["one batch", "three batches", "one value each", "nothing observed"],
)
def test_exposes_the_same_series_as_a_prometheus_histogram(batches: list[list[float]]) -> None:
    assert exposition("batch", batches) == exposition("reference", batches)


def test_a_value_on_a_bucket_edge_counts_in_that_bucket() -> None:
    lines = exposition("batch", [[0.01]])
    assert 'lag_seconds_bucket{le="0.001",stage="fusion"} 0.0' in lines
    assert 'lag_seconds_bucket{le="0.01",stage="fusion"} 1.0' in lines
    assert 'lag_seconds_bucket{le="+Inf",stage="fusion"} 1.0' in lines


def test_observe_takes_one_value() -> None:
    histogram = BatchHistogram("x_seconds", "X.", ["stage"], BUCKETS, None)
    histogram.labels("ingest").observe(0.5)
    histogram.labels("ingest").observe(math.inf)
    counts, total = histogram.labels("ingest").snapshot()
    assert counts == [0, 0, 0, 1, 1] and total == math.inf


def test_refuses_the_wrong_number_of_label_values() -> None:
    histogram = BatchHistogram("y_seconds", "Y.", ["stage"], BUCKETS, None)
    with pytest.raises(ValueError, match="takes labels stage"):
        histogram.labels("ingest", "extra")
