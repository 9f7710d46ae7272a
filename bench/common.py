"""What every bench family shares: the stack as real processes, CPU accounting, the measured
window, percentiles, and the results files."""

from __future__ import annotations

import asyncio
import contextlib
import platform
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.common.embedded import EmbeddedServer, free_port, start_kafka
from services.common.kafka import create_topics
from services.common.settings import ServiceSettings
from services.launcher.processes import ManagedProcess, start_process, stop_all

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 4


@dataclass(frozen=True)
class Options:
    duration_seconds: float  # measured part of each scenario
    warmup_seconds: float  # run but not measured, before each window
    log_dir: Path


@dataclass
class Stack:
    """The embedded broker and the wardflow services under test, each a separate OS process."""

    log_dir: Path
    kafka: EmbeddedServer | None = None
    services: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def kafka_url(self) -> str:
        assert self.kafka is not None, "start the broker first"
        return self.kafka.url

    def pids(self) -> dict[str, int]:
        """Processes whose CPU is accounted: the services, the broker, and this load generator."""
        pids = {name: managed.process.pid for name, managed in self.services.items()}
        if self.kafka is not None:
            pids["broker"] = self.kafka.process.pid
        return {**pids, "client": psutil.Process().pid}

    async def start_service(self, name: str, env: dict[str, str], timeout_seconds: float = 60.0) -> None:
        """`wardflow service <name>`, awaited until its /metrics says the stage is ready."""
        metrics_port = free_port()
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_url, **env}
        env["WARDFLOW_METRICS_PORT"] = str(metrics_port)
        managed = start_process(name, ["service", name], env, self.log_dir)
        self.services[name] = managed
        marker = f'wardflow_stage_ready{{stage="{name}"}} 1.0'
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        await poll_http(url, lambda text: marker in text, managed, timeout_seconds)

    def stop(self) -> None:
        stop_all(list(self.services.values()))
        if self.kafka is not None:
            self.kafka.stop()


@contextlib.asynccontextmanager
async def running_stack(log_dir: Path) -> AsyncIterator[Stack]:
    """A broker with wardflow's topics; every process started is stopped on exit, whatever ends
    the block (error, Ctrl-C)."""
    stack = Stack(log_dir)
    try:
        stack.kafka = await start_kafka(log_dir)
        await create_topics(ServiceSettings(kafka_bootstrap_servers=stack.kafka.url), PARTITIONS)
        yield stack
    finally:
        stack.stop()  # synchronous on purpose: a second cancellation cannot skip it


async def poll_http(
    url: str, ready: Any, managed: ManagedProcess, timeout_seconds: float
) -> None:
    """Poll `url` until `ready(body)`; fails at the deadline or when the process exits."""
    deadline = time.monotonic() + timeout_seconds
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            if not managed.alive():
                raise RuntimeError(f"{managed.name} exited:\n{managed.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(url)
                if response.status_code == 200 and ready(response.text):
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{managed.name}: {url} not ready in {timeout_seconds} s")
            await asyncio.sleep(0.1)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds used so far by each process (and its children)."""
    used: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            process = psutil.Process(pid)
            times = [process.cpu_times(), *(c.cpu_times() for c in process.children(True))]
        except psutil.Error:
            continue
        used[name] = sum(t.user + t.system for t in times)
    return used


class Window:
    """The measured part of a scenario: after a warm-up, for a fixed duration; CPU read at both
    ends. Samples count only when their reference time falls inside it."""

    def __init__(self, pids: dict[str, int], options: Options) -> None:
        self.pids = pids
        self.options = options
        self.start = float("inf")
        self.end = float("inf")
        self.over = asyncio.Event()
        self.cpu: dict[str, float] = {}
        self.latencies: list[float] = []
        self.requests = 0
        self.events = 0
        self.errors: Counter[str] = Counter()
        self.last_done = 0.0
        self.total_events = 0  # acknowledged at any time, warm-up included (broker check)

    async def run(self) -> None:
        await asyncio.sleep(self.options.warmup_seconds)
        before = cpu_seconds(self.pids)
        self.start = time.perf_counter()
        self.end = self.start + self.options.duration_seconds
        await asyncio.sleep(self.options.duration_seconds)
        after = cpu_seconds(self.pids)
        self.cpu = {name: after[name] - before[name] for name in after if name in before}
        self.over.set()

    def record(self, reference: float, done: float, events: int, error: str | None) -> None:
        """One answer: `reference` is when it should count (sent or scheduled), `done` when the
        answer arrived. Latency is `done - reference`."""
        if error is None:
            self.total_events += events
        if not self.start <= reference <= self.end:
            return
        self.requests += 1
        self.last_done = max(self.last_done, done)
        if error is None:
            self.events += events
            self.latencies.append(done - reference)
        else:
            self.errors[error] += 1

    def figures(self, offered_per_second: float | None = None) -> dict[str, Any]:
        elapsed = max(self.options.duration_seconds, self.last_done - self.start)
        ingest_cpu = self.cpu.get("ingest", 0.0)
        return {
            "offered_per_second": offered_per_second,
            "measured_seconds": round(elapsed, 3),
            "requests": self.requests,
            "events_accepted": self.events,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "requests_per_second": round(self.requests / elapsed, 1),
            "events_per_second": round(self.events / elapsed, 1),
            "ack_latency_ms": latency_summary(self.latencies),
            "cpu_seconds": {name: round(value, 3) for name, value in self.cpu.items()},
            "ingest_cpu_utilisation": round(ingest_cpu / self.options.duration_seconds, 3),
            "events_per_core_second": round(self.events / ingest_cpu, 1) if ingest_cpu else None,
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (`fraction` in 0..1)."""
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def latency_summary(seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    points = {"p50": 0.50, "p95": 0.95, "p99": 0.99, "max": 1.0}
    return {name: round(percentile(ordered, q) * 1000, 2) for name, q in points.items()}


async def topic_record_count(kafka_url: str, topic: str) -> int:
    """Records currently on `topic` (end minus beginning offsets over its partitions)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_url, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        return sum(ends[tp] - starts[tp] for tp in partitions)
    finally:
        await consumer.stop()


def machine_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit or "unknown",
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_model": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
