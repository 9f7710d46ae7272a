"""Prometheus metrics shared by every stage (see docs/architecture.md).

Names are `wardflow_<what>_<unit>`; counters end in `_total`; labels come only from small fixed sets
(stage, topic, reason, band, ward, status). Never a patient, bed, device or event id.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from services.common.batch_histogram import BatchHistogram

disable_created_metrics()  # `_created` series double the scrape size and no dashboard uses them

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
PROCESSING_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0, 86400.0)

EVENTS_IN = Counter("wardflow_events_in_total", "Events a stage received.", ["stage", "topic"])
EVENTS_OUT = Counter("wardflow_events_out_total", "Events a stage produced.", ["stage", "topic"])
EVENTS_REJECTED = Counter(
    "wardflow_events_rejected_total",
    "Events a stage refused or dead-lettered, by machine-readable reason.",
    ["stage", "reason"],
)
EVENTS_IN_PROGRESS = Gauge(
    "wardflow_events_in_progress",
    "Events of the batch a stage has in hand and has not finished yet.",
    ["stage"],
)
PROCESSING_SECONDS = BatchHistogram(
    "wardflow_processing_seconds",
    "Time a stage spent on one event.",
    ["stage"],
    buckets=PROCESSING_BUCKETS,
)
EVENT_TIME_LAG_SECONDS = BatchHistogram(
    "wardflow_event_time_lag_seconds",
    "Processing time minus the event's occurred_at.",
    ["stage"],
    buckets=LAG_BUCKETS,
)
LAST_PROCESSED_TIMESTAMP = Gauge(
    "wardflow_last_processed_timestamp_seconds",
    "Unix time a stage last finished a batch of events.",
    ["stage"],
)
CONSUMER_LAG_RECORDS = Gauge(
    "wardflow_consumer_lag_records",
    "Records of an input topic not yet processed by this replica of a stage: the sum over its"
    " assigned partitions of the end offset minus the position processed to.",
    ["stage", "topic"],
)
END_TO_END_LATENCY_SECONDS = Histogram(
    "wardflow_end_to_end_latency_seconds",
    "Time from ingest accepting an event to a stage producing its outcome.",
    ["stage"],
    buckets=LATENCY_BUCKETS,
)


FAILURE_REASONS = ("invalid_event", "processing_error")
"""The reasons any consuming stage may dead-letter a record for (stages add their own)."""


def declare_stage(stage: str, topics: Iterable[str]) -> None:
    """Create a consuming stage's series at 0 before its first event (input topics, lag, the
    common failure reasons), so that `rate()` and `increase()` count that first event too."""
    for name in topics:
        EVENTS_IN.labels(stage, name)
        CONSUMER_LAG_RECORDS.labels(stage, name)
    for reason in FAILURE_REASONS:
        EVENTS_REJECTED.labels(stage, reason)


@cache
def stage_series(stage: str) -> tuple[Any, Any, Any]:
    """The stage's in-progress, processing-time and last-processed series. `labels()` costs a
    lock and a lookup per call, and this runs for every batch: the children are looked up once
    (prometheus_client keeps returning the same child for the same labels)."""
    return (
        EVENTS_IN_PROGRESS.labels(stage),
        PROCESSING_SECONDS.labels(stage),
        LAST_PROCESSED_TIMESTAMP.labels(stage),
    )


def serve_metrics(host: str, port: int) -> None:
    """Expose /metrics on its own port (a daemon thread); port 0 disables it."""
    if port:
        start_http_server(port, addr=host)
