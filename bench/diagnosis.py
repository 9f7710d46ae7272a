"""Observation to assessment through the real diagnosis service, as a process.

The bench plays fusion: it writes PatientStateUpdated snapshots straight to patients.state on a
timetable (2,000 patients in WARD-A with care plans, vital signs drifting so that a band or a
recommended pathway changes now and then), every monitor reading `observed_at` = the moment it is
sent. `wardflow service diagnosis` scores each one and issues an AssessmentIssued on
patients.assessments only when it says something new. The bench reads that topic back: latency
is the assessment record's broker timestamp minus the newest `observed_at` in its sub-scores (the
snapshot that caused it). Snapshots taken in and assessments issued come from the service's
/metrics, CPU from psutil.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
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
from bench.stages import stage_counts
from schemas.codec import decode
from schemas.topics import PATIENTS_ASSESSMENTS, PATIENTS_STATE
from services.common.kafka import topic

RATE_PER_SECOND = 1_000.0
PATIENTS = 2_000
WARD = "WARD-A"  # a general ward of the built-in layout: alerts and bed requests apply
DRAIN_SECONDS = 60.0
ASSESSED = "wardflow_assessments_total"  # diagnosis: assessments issued, by band
# snapshot field, low, high: baselines straddle NEWS2, qSOFA and SIRS thresholds
VITALS = [
    ("respiratory_rate_per_min", 12.0, 25.0),
    ("spo2_percent", 91.0, 100.0),
    ("systolic_bp_mmhg", 95.0, 160.0),
    ("heart_rate_bpm", 55.0, 120.0),
    ("temperature_celsius", 35.8, 38.8),
]


class Ward:
    """Snapshots of PATIENTS patients as fusion would write them: each patient's vital signs
    drift around a baseline (2% of the range per snapshot at most), their version counts up, and
    their care plan (ceiling of care, suspected infection) stays as admitted."""

    def __init__(self, seed: int, admitted: datetime) -> None:
        self.random = Random(seed)
        self.admitted = admitted.isoformat()  # oxygen and consciousness were charted then
        self.level: dict[int, list[float]] = {}
        self.fixed: dict[int, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        self.version: Counter[int] = Counter()

    def _admit(self, number: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        random = self.random
        oxygen = {"on_supplemental_oxygen": random.random() < 0.15,
                  "observed_at": self.admitted, "source": "bench-chart"}  # fmt: skip
        level = "C" if random.random() < 0.05 else "A"
        consciousness = {"level": level, "observed_at": self.admitted, "source": "bench-chart"}
        care = {"ceiling": random.choice(["icu", "icu", "icu", "hdu", "general"]),
                "suspected_infection": random.random() < 0.3}  # fmt: skip
        return oxygen, consciousness, care

    def snapshot(self, now: datetime, number: int | None = None) -> tuple[bytes, bytes]:
        """The next PatientStateUpdated of patient `number` (default: any): (key, value)."""
        random = self.random
        number = random.randrange(PATIENTS) if number is None else number
        levels = self.level.setdefault(number, [random.uniform(lo, hi) for _, lo, hi in VITALS])
        for index, (_, lo, hi) in enumerate(VITALS):
            step = (hi - lo) * 0.02 * random.uniform(-1, 1)
            levels[index] = min(hi, max(lo, levels[index] + step))
        if number not in self.fixed:
            self.fixed[number] = self._admit(number)
        oxygen, consciousness, care = self.fixed[number]
        self.version[number] += 1
        patient, at = f"p{number:031x}", now.isoformat()
        readings: dict[str, Any] = {
            name: {"value": round(level, 1), "observed_at": at, "source": "bench-monitor"}
            for (name, _, _), level in zip(VITALS, levels, strict=True)
        }
        readings["supplemental_oxygen"] = oxygen
        readings["consciousness"] = consciousness
        state = {
            "kind": "PatientStateUpdated",
            "event_id": str(uuid4()),
            "occurred_at": at,
            "recorded_at": at,
            "source": "bench-fusion",
            "schema_version": 1,
            "patient_id": patient,
            "version": self.version[number],
            "encounter_status": "in_progress",
            "ward": WARD,
            "readings": readings,
            "care": care,
            "cause_recorded_at": at,
        }
        return patient.encode(), orjson.dumps(state)


class Assessments:
    """What diagnosis wrote to patients.assessments: every record's kind, and the latency of each
    AssessmentIssued whose snapshot was sent inside the measured window."""

    def __init__(self) -> None:
        self.window = (float("inf"), float("inf"))  # wall-clock epoch seconds
        self.latencies: list[float] = []
        self.kinds: Counter[str] = Counter()

    async def read(self, stack: Stack, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            topic(stack.settings, PATIENTS_ASSESSMENTS),
            bootstrap_servers=stack.kafka_url,
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=5_000)
                for records in batch.values():
                    for record in records:
                        self.add(orjson.loads(record.value or b"{}"), record.timestamp / 1000)
        finally:
            await consumer.stop()

    def add(self, body: dict[str, Any], broker_seconds: float) -> None:
        kind = str(body.get("kind"))
        self.kinds[kind] += 1
        if kind != "AssessmentIssued":
            return
        observed = [s["observed_at"] for s in body.get("sub_scores", []) if s.get("observed_at")]
        if not observed:
            return
        newest = max(datetime.fromisoformat(at).timestamp() for at in observed)
        if self.window[0] <= newest <= self.window[1]:
            self.latencies.append(broker_seconds - newest)


async def metric_sum(client: httpx.AsyncClient, url: str, name: str) -> float:
    """The sum of every sample of one counter on a /metrics page."""
    text = (await client.get(url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ward = Ward(11, datetime.now(UTC) - timedelta(minutes=5))
    decode(PATIENTS_STATE, ward.snapshot(datetime.now(UTC))[1])  # the contract, checked up front
    assessments = Assessments()
    async with running_stack(options.log_dir) as stack:
        env = {"WARDFLOW_TOPIC_PREFIX": stack.settings.topic_prefix,
               "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": "10", "WARDFLOW_PARTITIONS": "4"}  # fmt: skip
        await stack.start_service("diagnosis", env)
        urls = {"diagnosis": f"http://127.0.0.1:{stack.metrics_ports['diagnosis']}/metrics"}
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_url, acks="all", linger_ms=5)
        await producer.start()
        stop_reading = asyncio.Event()
        reader = asyncio.create_task(assessments.read(stack, stop_reading))
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                # Admission: every patient's first snapshot (a "first" assessment each) before
                # the timetable, so the window sees the steady state, not first assessments.
                state_topic = topic(stack.settings, PATIENTS_STATE)
                for number in range(PATIENTS):
                    key, value = ward.snapshot(datetime.now(UTC), number)
                    await producer.send(state_topic, value=value, key=key)
                await producer.flush()
                admitted_in = await drain(client, urls, PATIENTS, time.perf_counter())
                sending = asyncio.create_task(
                    send_on_timetable(producer, state_topic, RATE_PER_SECOND,
                                      options.warmup_seconds + options.duration_seconds,
                                      lambda: ward.snapshot(datetime.now(UTC)))
                )  # fmt: skip
                await asyncio.sleep(options.warmup_seconds)
                wall, started = time.time(), time.perf_counter()
                before = await stage_counts(client, urls)
                issued_before = await metric_sum(client, urls["diagnosis"], ASSESSED)
                cpu_before = cpu_seconds(stack.pids())
                assessments.window = (wall, wall + options.duration_seconds)
                await asyncio.sleep(options.duration_seconds)
                cpu_after = cpu_seconds(stack.pids())
                after = await stage_counts(client, urls)
                issued_after = await metric_sum(client, urls["diagnosis"], ASSESSED)
                elapsed = time.perf_counter() - started
                total = await sending
                drained_in = await drain(client, urls, PATIENTS + total, time.perf_counter())
                await asyncio.sleep(1.0)  # the last assessments reach the reader
        finally:
            stop_reading.set()
            await reader
            await producer.stop()
    cpu = {name: round(cpu_after[name] - cpu_before.get(name, 0.0), 2) for name in cpu_after}
    snapshots = (after["diagnosis"] - before["diagnosis"]) / elapsed
    issued = (issued_after - issued_before) / elapsed
    result = {
        "name": "diagnosis_1000",
        "description": f"{RATE_PER_SECOND:,.0f} PatientStateUpdated/s over {PATIENTS:,} patients "
        f"({WARD}, care plans, drifting vital signs) written to patients.state; diagnosis as a "
        "process; latency = assessment's broker timestamp - newest observed_at of its snapshot",
        "offered_per_second": RATE_PER_SECOND,
        "snapshots_per_second": round(snapshots, 1),
        "assessments_issued_per_second": round(issued, 1),
        "issued_per_snapshot": round(issued / snapshots, 4) if snapshots else None,
        "observation_to_assessment_ms": latency_summary(assessments.latencies),
        "latency_samples": len(assessments.latencies),
        "cpu_seconds": cpu,
        "cpu_utilisation": {name: round(cpu[name] / elapsed, 3) for name in cpu},
        "drained_seconds_after_sending": drained_in,
        "snapshots_sent": total,
        "target": {
            "text": f"diagnosis keeps up with {RATE_PER_SECOND:,.0f} snapshots/s",
            "met": snapshots >= 0.97 * RATE_PER_SECOND,
        },
    }
    checks = {
        "admission (one snapshot per patient, before the timetable) taken in after s": admitted_in,
        "snapshots sent on the timetable": total,
        "records on patients.assessments, by kind": dict(sorted(assessments.kinds.items())),
    }
    return [result], checks


async def drain(
    client: httpx.AsyncClient, urls: dict[str, str], total: int, since: float
) -> float | None:
    """Seconds until diagnosis has taken in every snapshot (None if not within DRAIN_SECONDS)."""
    while time.perf_counter() - since < DRAIN_SECONDS:
        if (await stage_counts(client, urls)).get("diagnosis", 0) >= total:
            return round(time.perf_counter() - since, 2)
        await asyncio.sleep(0.25)
    return None


def table_rows(scenarios: list[dict[str, Any]]) -> list[list[str]]:
    rows = [["scenario", "offered/s", "snapshots in/s", "assessments/s", "issued/snapshot",
             "obs->assessment p50/p99 ms", "CPU diagnosis/broker/client", "drained after s",
             "target"]]  # fmt: skip
    for s in scenarios:
        cpu, lat, target = s["cpu_utilisation"], s["observation_to_assessment_ms"], s["target"]
        rows.append([
            s["name"], f"{s['offered_per_second']:,.0f}", f"{s['snapshots_per_second']:,.0f}",
            f"{s['assessments_issued_per_second']:,.0f}", f"{s['issued_per_snapshot']}",
            f"{lat['p50']} / {lat['p99']}",
            " / ".join(f"{cpu.get(n, 0):.0%}" for n in ("diagnosis", "broker", "client")),
            str(s["drained_seconds_after_sending"]),
            f"{target['text']}: {'met' if target['met'] else 'MISSED'}",
        ])  # fmt: skip
    return rows
