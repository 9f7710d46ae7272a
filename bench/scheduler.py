"""The scheduler under a steady stream of bed requests: allocation decision latency and rate.

The embedded broker and Redis, and `wardflow service scheduler` as a process with a layout of
1,000 general beds. The bench writes PatientAdmitted events without a bed to events.clean at
REQUESTS_PER_SECOND (as cleaning would), with `recorded_at` = the moment it sends; the scheduler
allocates each atomically in Redis and publishes BedAssigned. Latency = the BedAssigned record's
broker timestamp - the admission's send time: the decision is published after Redis was updated,
so it covers request in -> Redis updated -> decision published. To keep beds free, every
assigned patient is discharged DISCHARGE_AFTER_SECONDS later, and housekeeping reacts to each
bed turning dirty (then cleaning) on beds.events: the scheduler takes in about four events per
request.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import (
    Options,
    Stack,
    cpu_seconds,
    running_stack,
    send_on_timetable,
)
from bench.figures import latency_summary
from bench.stages import stage_counts
from schemas.topics import BEDS_EVENTS, EVENTS_CLEAN, SCHEDULING_DECISIONS
from services.common.embedded import EmbeddedServer, free_port, start_redis
from services.common.kafka import topic

REQUESTS_PER_SECOND = 200.0
WARDS = 40
BEDS_PER_WARD = 100  # 4,000 beds: enough that allocation alone never runs out in a run
DISCHARGE_AFTER_SECONDS = 2.0
TARGET_P99_MS = 10.0
# The embedded broker answers a fetch only when its wait expires (docs/architecture.md §6), so
# the scheduler's fetch wait is a floor under every decision's latency here; Apache Kafka answers
# as soon as a record arrives.
FETCH_WAIT_MS = 10
READER_KEY = "bench-reader-key-0123456789"  # the scheduler's API is not used; it needs a key


def layout_toml() -> str:
    wards = [
        f'[[wards]]\nid = "GW{n:02d}"\nlevel_of_care = "general"\nbeds = {BEDS_PER_WARD}\n'
        for n in range(WARDS)
    ]
    return 'version = "bench"\n\n' + "\n".join(wards)


def envelope(kind: str, key: str, **fields: Any) -> tuple[bytes, bytes]:
    now = datetime.now(UTC).isoformat()
    body = {"kind": kind, "event_id": str(uuid4()), "occurred_at": now, "recorded_at": now,
            "source": "bench", **fields}  # fmt: skip
    return key.encode(), orjson.dumps(body)


class Hospital:
    """Sends the admissions on a timetable and, for every assignment read back, the discharge
    and the housekeeping that free the bed again."""

    def __init__(self, producer: AIOKafkaProducer, clean_topic: str, *, cycle: bool) -> None:
        self.cycle = cycle  # discharge and clean every bed again, or only allocate
        self.producer = producer
        self.topic = clean_topic
        self.sent_at: dict[str, float] = {}  # patient -> wall-clock send time (epoch seconds)
        self.window = (float("inf"), float("inf"))
        self.latencies: list[float] = []
        self.kinds: Counter[str] = Counter()
        self.followers: set[asyncio.Task[None]] = set()
        self.admitted = 0

    def admission(self) -> tuple[bytes, bytes]:
        """The next admission without a bed, its send time remembered for the latency."""
        number = self.admitted
        self.admitted += 1
        patient, ward = f"B{number:07d}", f"GW{number % WARDS:02d}"
        self.sent_at[patient] = time.time()
        return envelope("PatientAdmitted", patient, patient_id=patient, ward=ward)

    async def read(self, kafka_url: str, topics: list[str], stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=kafka_url,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=5_000)
                for records in batch.values():
                    for record in records:
                        self.decided(orjson.loads(record.value or b"{}"), record.timestamp / 1000)
        finally:
            await consumer.stop()

    def decided(self, body: dict[str, Any], broker_seconds: float) -> None:
        kind = str(body.get("kind"))
        self.kinds[kind] += 1
        if kind == "BedStatusChanged" and self.cycle:  # housekeeping reacts to the bed's state
            status = {"dirty": "cleaning", "cleaning": "available"}.get(body["status"])
            if status is not None:
                self.follow(self.report(body["ward"], body["bed"], status))
            return
        if kind != "BedAssigned":
            return
        patient, ward = body["patient_id"], body["ward"]
        sent = self.sent_at.get(patient)
        if sent is not None and self.window[0] <= sent <= self.window[1]:
            self.latencies.append(broker_seconds - sent)
        if self.cycle:
            self.follow(self.discharge_later(patient, ward))

    def follow(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.followers.add(task)
        task.add_done_callback(self.followers.discard)

    async def discharge_later(self, patient: str, ward: str) -> None:
        await asyncio.sleep(DISCHARGE_AFTER_SECONDS)
        key, value = envelope("PatientDischarged", patient, patient_id=patient, ward=ward)
        await self.producer.send(self.topic, value=value, key=key)

    async def report(self, ward: str, bed: str, status: str) -> None:
        await asyncio.sleep(0.2)  # housekeeping takes a moment
        key, value = envelope("BedStatusReported", ward, ward=ward, bed=bed, status=status)
        await self.producer.send(self.topic, value=value, key=key)


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    results, checks = [], {}
    for cycle in (False, True):  # each scenario on a fresh broker, Redis and scheduler
        async with running_stack(options.log_dir) as stack:
            redis = await start_redis(options.log_dir, options.log_dir / f"redis-{cycle}")
            try:
                result, check = await measure(stack, options, redis, cycle=cycle)
            finally:
                redis.stop()
        results.append(result)
        checks.update({f"{result['name']}: {key}": value for key, value in check.items()})
    return results, checks


async def measure(
    stack: Stack, options: Options, redis: EmbeddedServer, *, cycle: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    redis_url = redis.url
    layout = Path(options.log_dir) / "bench-layout.toml"
    layout.write_text(layout_toml())
    env = {"WARDFLOW_TOPIC_PREFIX": stack.settings.topic_prefix,
           "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS), "REDIS_URL": redis_url,
           "WARDFLOW_HOSPITAL_LAYOUT": str(layout), "WARDFLOW_HTTP_PORT": str(free_port()),
           "WARDFLOW_API_KEYS": orjson.dumps({"bench": READER_KEY}).decode()}  # fmt: skip
    await stack.start_service("scheduler", env)
    urls = {"scheduler": f"http://127.0.0.1:{stack.metrics_ports['scheduler']}/metrics"}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_url, acks="all", linger_ms=2)
    await producer.start()
    hospital = Hospital(producer, topic(stack.settings, EVENTS_CLEAN), cycle=cycle)
    stop_reading = asyncio.Event()
    reader = asyncio.create_task(
        hospital.read(
            stack.kafka_url,
            [topic(stack.settings, SCHEDULING_DECISIONS), topic(stack.settings, BEDS_EVENTS)],
            stop_reading,
        )
    )
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            sending = asyncio.create_task(
                send_on_timetable(
                    producer,
                    hospital.topic,
                    REQUESTS_PER_SECOND,
                    options.warmup_seconds + options.duration_seconds,
                    hospital.admission,
                )
            )
            await asyncio.sleep(options.warmup_seconds)
            wall, started = time.time(), time.perf_counter()
            hospital.window = (wall, wall + options.duration_seconds)
            before = await stage_counts(client, urls)
            pids = {**stack.pids(), "redis": redis.process.pid}
            cpu_before = cpu_seconds(pids)
            await asyncio.sleep(options.duration_seconds)
            cpu_after = cpu_seconds(pids)
            after = await stage_counts(client, urls)
            elapsed = time.perf_counter() - started
            total = await sending
            await asyncio.sleep(DISCHARGE_AFTER_SECONDS + 2.0)  # the last decisions arrive
    finally:
        stop_reading.set()
        await reader
        for task in list(hospital.followers):
            task.cancel()
        await producer.stop()
    cpu = {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after}
    in_window = len(hospital.latencies)
    latency = latency_summary(hospital.latencies)
    p99 = latency.get("p99")
    result: dict[str, Any] = {
        "name": "hospital_cycle_200" if cycle else "allocation_200",
        "description": f"{REQUESTS_PER_SECOND:,.0f} admissions without a bed/s over {WARDS} "
        f"general wards of {BEDS_PER_WARD} beds"
        + (
            f", each patient discharged {DISCHARGE_AFTER_SECONDS:g} s after their bed and "
            "housekeeping cleaning each bed it sees turn dirty on beds.events (about 4 scheduler "
            "events per request)"
            if cycle
            else " (allocation only: one scheduler event per request)"
        )
        + "; scheduler as a process on the embedded broker and Redis; latency = BedAssigned "
        "broker timestamp - admission send time",
        "offered_per_second": REQUESTS_PER_SECOND,
        "allocations_per_second": round(in_window / elapsed, 1),
        "scheduler_events_per_second": round(
            (after["scheduler"] - before["scheduler"]) / elapsed, 1
        ),
        "decision_latency_ms": latency,
        "latency_samples": in_window,
        "cpu_seconds": cpu,
        "cpu_utilisation": {name: round(cpu[name] / elapsed, 3) for name in cpu},
        "requests_sent": total,
        "target": {
            "text": f"decision p99 < {TARGET_P99_MS:g} ms at {REQUESTS_PER_SECOND:,.0f} requests/s"
            + (" (with 3 more events per request)" if cycle else ""),
            "met": p99 is not None and p99 < TARGET_P99_MS,
        },
    }
    checks = {
        "requests sent (warm-up and window)": total,
        "records on scheduling.decisions and beds.events, by kind": dict(
            sorted(hospital.kinds.items())
        ),
    }
    return result, checks


def table_rows(scenarios: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["scenario", "offered/s", "allocations/s", "scheduler events in/s",
             "decision p50/p95/p99 ms", "CPU scheduler/redis/broker/client", "target"]]  # fmt: skip
    for s in scenarios:
        lat, cpu, target = s["decision_latency_ms"], s["cpu_utilisation"], s["target"]
        rows.append([
            s["name"], f"{s['offered_per_second']:,.0f}", f"{s['allocations_per_second']:,.1f}",
            f"{s['scheduler_events_per_second']:,.0f}",
            " / ".join("-" if lat[k] is None else f"{lat[k]:.2f}" for k in ("p50", "p95", "p99")),
            " / ".join(
                f"{cpu.get(n, 0.0):.0%}" for n in ("scheduler", "redis", "broker", "client")
            ),
            f"{target['text']}: {'met' if target['met'] else 'MISSED'}",
        ])  # fmt: skip
    return rows
