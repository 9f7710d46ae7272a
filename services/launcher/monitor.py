"""What `wardflow up` shows and sums up: each service's /metrics, and a downstream consumer of
assessments, decisions and ward availability (exactly what a real consumer would see)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from schemas.assessments import AlertEscalated, AssessmentIssued, CriticalCareBedRequested
from schemas.beds import BedAssigned, BedReserved, WardAvailabilityUpdated
from schemas.codec import decode
from schemas.topics import BEDS_AVAILABILITY, PATIENTS_ASSESSMENTS, SCHEDULING_DECISIONS, full_name
from schemas.vocabulary import LevelOfCare

log = logging.getLogger(__name__)
CRITICAL_CARE = (LevelOfCare.HDU, LevelOfCare.ICU)
SERVICES = ("ingest", "cleaning", "fusion", "diagnosis", "scheduler")


@dataclass
class StageCounts:
    events_in: float = 0.0
    events_out: float = 0.0
    rejected: float = 0.0
    dead_lettered: float = 0.0


def parse_stage_counts(text: str, stage: str) -> StageCounts:
    """Events in, out (not counting dead letters) and rejected, from a /metrics page."""
    counts = StageCounts()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("stage") != stage or not sample.name.endswith("_total"):
                continue
            if sample.name == "wardflow_events_in_total":
                counts.events_in += sample.value
            elif sample.name == "wardflow_events_out_total":
                if sample.labels.get("topic") == "events.dlq":
                    counts.dead_lettered += sample.value
                else:
                    counts.events_out += sample.value
            elif sample.name == "wardflow_events_rejected_total":
                counts.rejected += sample.value
    return counts


async def scrape(client: httpx.AsyncClient, metrics_urls: dict[str, str]) -> dict[str, StageCounts]:
    result: dict[str, StageCounts] = {}
    for name, url in metrics_urls.items():
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(url, timeout=2.0)
            result[name] = parse_stage_counts(response.text, name)
    return result


@dataclass
class Outcomes:
    """What a downstream consumer sees on the output topics."""

    bands: Counter[str] = field(default_factory=Counter)
    latencies_seconds: list[float] = field(default_factory=list)
    allocations: int = 0
    escalations: int = 0
    critical_care_requests: int = 0
    reservations: int = 0
    wards: dict[str, WardAvailabilityUpdated] = field(default_factory=dict)
    seen: set[Any] = field(default_factory=set)

    def record(self, event: Any) -> None:
        if isinstance(
            event, AssessmentIssued | AlertEscalated | CriticalCareBedRequested | BedReserved
        ):
            if event.event_id in self.seen:
                return  # at-least-once: a redelivered event is the same event
            self.seen.add(event.event_id)
        if isinstance(event, AlertEscalated):
            self.escalations += 1
        elif isinstance(event, CriticalCareBedRequested):
            self.critical_care_requests += 1
        elif isinstance(event, BedReserved):
            if event.level_of_care in CRITICAL_CARE:  # not a bed manager's ward reservation
                self.reservations += 1
        elif isinstance(event, AssessmentIssued):
            self.bands[event.band.value if event.band else "incomplete"] += 1
            latency = (event.recorded_at - event.cause_recorded_at).total_seconds()
            self.latencies_seconds.append(max(0.0, latency))
        elif isinstance(event, BedAssigned):
            self.allocations += 1
        elif isinstance(event, WardAvailabilityUpdated):
            self.wards[event.ward] = event

    def latency_quantiles(self) -> dict[str, float | int | None]:
        values = sorted(self.latencies_seconds)
        if len(values) < 2:
            only = values[0] if values else None
            return {"p50": only, "p99": only, "count": len(values)}
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return {"p50": round(cuts[49], 4), "p99": round(cuts[98], 4), "count": len(values)}

    def beds_by_ward(self) -> dict[str, dict[str, int]]:
        return {
            ward: {status.value: n for status, n in update.beds_by_status.items()}
            for ward, update in sorted(self.wards.items())
        }

    def beds_by_status(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for statuses in self.beds_by_ward().values():
            totals.update(statuses)
        return dict(totals)


async def follow_outcomes(
    bootstrap_servers: str, prefix: str, outcomes: Outcomes, stop: asyncio.Event
) -> None:
    """Consume the output topics from the beginning (no group: a read-only observer)."""
    specs = {
        full_name(s, prefix): s
        for s in (PATIENTS_ASSESSMENTS, SCHEDULING_DECISIONS, BEDS_AVAILABILITY)
    }
    consumer = AIOKafkaConsumer(
        *specs,
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    with contextlib.suppress(ValueError):
                        outcomes.record(decode(specs[record.topic], record.value or b""))
    finally:
        await consumer.stop()
