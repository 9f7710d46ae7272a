"""Cleaning and fusion under a steady stream of vital signs, as separate processes.

The bench writes VitalSignsObserved straight to events.raw on a timetable (as ingest would after
accepting them), with `recorded_at` = the moment it sends, and reads events.clean and
patients.state back: per-stage latency is the output record's broker timestamp minus that moment.
Throughput and CPU come from each stage's /metrics and psutil. Fusion throttles its snapshots, so
the ratio of snapshots to events is reported too.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
from uuid import uuid4

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.common import (
    Options,
    Stack,
    cpu_seconds,
    running_stack,
    send_on_timetable,
)
from bench.figures import latency_summary
from schemas.topics import EVENTS_CLEAN, EVENTS_RAW, PATIENTS_STATE
from services.common.kafka import topic

RATE_PER_SECOND = 5_000.0
PATIENTS = 2_000
DRAIN_SECONDS = 60.0
# parameter, UCUM unit, LOINC, low, high
VITALS = [
    ("heart_rate", "/min", "8867-4", 55.0, 120.0),
    ("respiratory_rate", "/min", "9279-1", 12.0, 26.0),
    ("spo2", "%", "59408-5", 90.0, 100.0),
    ("systolic_bp", "mm[Hg]", "8480-6", 95.0, 160.0),
    ("temperature", "Cel", "8310-5", 36.0, 38.8),
]


class Monitors:
    """Readings for PATIENTS patients, each drifting slowly around a baseline as real vital signs
    do (a fresh random value per reading would cross a scoring band almost every time and make
    fusion's throttle look worse than it is)."""

    def __init__(self, seed: int) -> None:
        self.random = Random(seed)
        self.level: dict[int, list[float]] = {}

    def raw_event(self, now: datetime) -> tuple[bytes, bytes]:
        """One monitor reading as ingest would have written it: (key, value)."""
        number = self.random.randrange(PATIENTS)
        levels = self.level.setdefault(
            number, [self.random.uniform(lo, hi) for _, _, _, lo, hi in VITALS]
        )
        for index, (_, _, _, lo, hi) in enumerate(VITALS):
            step = (hi - lo) * 0.01 * self.random.uniform(-1, 1)
            levels[index] = min(hi, max(lo, levels[index] + step))
        patient = f"p{number:031x}"
        event = {
            "kind": "VitalSignsObserved",
            "event_id": str(uuid4()),
            "occurred_at": (now - timedelta(seconds=1)).isoformat(),
            "recorded_at": now.isoformat(),
            "source": "bench-monitors",
            "schema_version": 1,
            "patient_id": patient,
            "measurements": [
                {"parameter": p, "value": round(level, 1), "unit": u, "loinc": c}
                for (p, u, c, _, _), level in zip(VITALS, levels, strict=True)
            ],
        }
        return patient.encode(), orjson.dumps(event)


async def stage_counts(client: httpx.AsyncClient, urls: dict[str, str]) -> dict[str, float]:
    """Events each stage has taken in so far (wardflow_events_in_total)."""
    counts: dict[str, float] = {}
    for name, url in urls.items():
        text = (await client.get(url)).text
        counts[name] = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "wardflow_events_in_total"
        )
    return counts


async def read_latencies(stack: Stack, stop: asyncio.Event) -> dict[str, list[float]]:
    """Broker timestamp of each output record minus the `recorded_at` of its input."""
    topics = {topic(stack.settings, EVENTS_CLEAN): "raw_to_clean",
              topic(stack.settings, PATIENTS_STATE): "raw_to_state"}  # fmt: skip
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=stack.kafka_url, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)  # fmt: skip
    latencies: dict[str, list[float]] = {name: [] for name in topics.values()}
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
            for records in batch.values():
                for record in records:
                    body = orjson.loads(record.value or b"{}")
                    sent = body.get("cause_recorded_at") or body.get("recorded_at")
                    if sent:
                        at = datetime.fromisoformat(sent).timestamp()
                        latencies[topics[record.topic]].append(record.timestamp / 1000 - at)
        return latencies
    finally:
        await consumer.stop()


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    async with running_stack(options.log_dir) as stack:
        common = {"WARDFLOW_TOPIC_PREFIX": stack.settings.topic_prefix,
                  "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10", "WARDFLOW_PARTITIONS": "4"}  # fmt: skip
        await stack.start_service("cleaning", common)
        await stack.start_service("fusion", common)
        urls = {
            name: f"http://127.0.0.1:{port}/metrics" for name, port in stack.metrics_ports.items()
        }
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_url, acks="all", linger_ms=5)
        await producer.start()
        stop_reading = asyncio.Event()
        reader = asyncio.create_task(read_latencies(stack, stop_reading))
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                monitors = Monitors(7)
                sending = asyncio.create_task(
                    send_on_timetable(producer, topic(stack.settings, EVENTS_RAW),
                                      RATE_PER_SECOND,
                                      options.warmup_seconds + options.duration_seconds,
                                      lambda: monitors.raw_event(datetime.now(UTC)))
                )  # fmt: skip
                await asyncio.sleep(options.warmup_seconds)
                before, cpu_before, started = (
                    await stage_counts(client, urls),
                    cpu_seconds(stack.pids()),
                    time.perf_counter(),
                )
                await asyncio.sleep(options.duration_seconds)
                after, cpu_after = await stage_counts(client, urls), cpu_seconds(stack.pids())
                elapsed = time.perf_counter() - started
                total = await sending
                drained_in = await drain(client, urls, total, time.perf_counter())
        finally:
            stop_reading.set()
            latencies = await reader
            await producer.stop()
    cpu = {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after}
    rates = {name: (after[name] - before[name]) / elapsed for name in after}
    snapshots = len(latencies["raw_to_state"])
    result = {
        "name": "cleaning_fusion_5000",
        "description": f"{RATE_PER_SECOND:,.0f} VitalSignsObserved/s over {PATIENTS:,} patients "
        "written to events.raw; cleaning and fusion as processes",
        "offered_per_second": RATE_PER_SECOND,
        "events_per_second": {name: round(rate) for name, rate in rates.items()},
        "cpu_seconds": cpu,
        "cpu_utilisation": {name: round(cpu[name] / elapsed, 3) for name in cpu},
        "latency_ms": {name: latency_summary(values) for name, values in latencies.items()},
        "snapshots_per_event": round(snapshots / max(1, total), 4),
        "drained_seconds_after_sending": drained_in,
        "events_sent": total,
        "target": {
            "text": "each stage keeps up with 5,000 events/s",
            "met": all(rate >= 0.97 * RATE_PER_SECOND for rate in rates.values()),
        },
    }
    return [result], {"events sent": total, "snapshots on patients.state": snapshots}


async def drain(
    client: httpx.AsyncClient, urls: dict[str, str], total: int, since: float
) -> float | None:
    """Seconds until fusion has taken in every event (None if not within DRAIN_SECONDS)."""
    while time.perf_counter() - since < DRAIN_SECONDS:
        counts = await stage_counts(client, urls)
        if counts.get("fusion", 0) >= total:
            return round(time.perf_counter() - since, 2)
        await asyncio.sleep(0.25)
    return None


def table_rows(scenarios: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["scenario", "offered/s", "cleaning in/s", "fusion in/s", "raw->clean p50/p99 ms",
             "raw->state p50/p99 ms", "CPU cleaning/fusion/broker", "snapshots/event",
             "drained after s", "target"]]  # fmt: skip
    for s in scenarios:
        rate, cpu, lat = s["events_per_second"], s["cpu_utilisation"], s["latency_ms"]
        target = s["target"]
        rows.append([
            s["name"], f"{s['offered_per_second']:,.0f}", f"{rate.get('cleaning', 0):,}",
            f"{rate.get('fusion', 0):,}",
            f"{lat['raw_to_clean']['p50']} / {lat['raw_to_clean']['p99']}",
            f"{lat['raw_to_state']['p50']} / {lat['raw_to_state']['p99']}",
            " / ".join(f"{cpu.get(n, 0):.0%}" for n in ("cleaning", "fusion", "broker")),
            f"{s['snapshots_per_event']}", str(s["drained_seconds_after_sending"]),
            f"{target['text']}: {'met' if target['met'] else 'MISSED'}",
        ])  # fmt: skip
    return rows
