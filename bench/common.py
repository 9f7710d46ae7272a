"""What every bench family shares: the stack as real processes, CPU accounting, the measured
window, percentiles and targets. The runner and the results files are in `__main__`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.figures import latency_summary
from services.common.embedded import EmbeddedServer, die_with_parent, free_port, start_kafka
from services.common.kafka import create_topics
from services.common.settings import ServiceSettings
from services.launcher.processes import ManagedProcess, start_process, stop_all

PARTITIONS = 4
C = TypeVar("C")


@dataclass(frozen=True)
class Options:
    duration_seconds: float  # measured part of each scenario
    warmup_seconds: float  # run but not measured, before each window
    log_dir: Path


@dataclass
class Stack:
    """The embedded broker and the wardflow services under test, each a separate OS process."""

    log_dir: Path
    settings: ServiceSettings = field(default_factory=ServiceSettings)  # topic names
    kafka: EmbeddedServer | None = None
    services: dict[str, ManagedProcess] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    servers: list[EmbeddedServer] = field(default_factory=list)  # e.g. Redis, stopped last

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

    async def start_service(
        self,
        name: str,
        env: dict[str, str],
        timeout_seconds: float = 60.0,
        module: list[str] | None = None,
    ) -> None:
        """`wardflow service <name>` (or `python -m <module...>`), awaited until its /metrics
        says the stage `name` is ready."""
        metrics_port = free_port()
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_url, **env}
        env["WARDFLOW_METRICS_PORT"] = str(metrics_port)
        self.metrics_ports[name] = metrics_port
        if module is None:
            managed = start_process(name, ["service", name], env, self.log_dir)
        else:
            managed = start_module(name, module, env, self.log_dir)
        self.services[name] = managed
        marker = f'wardflow_stage_ready{{stage="{name}"}} 1.0'
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        await poll_http(url, lambda text: marker in text, managed, timeout_seconds)

    def stop(self) -> None:
        stop_all(list(self.services.values()))
        for server in self.servers:
            server.stop()
        if self.kafka is not None:
            self.kafka.stop()


def start_module(
    name: str, module: list[str], env: dict[str, str], log_dir: Path
) -> ManagedProcess:
    """`python -m <module...>` with this interpreter, started and logged as the services are."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", *module],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
    return ManagedProcess(name, process, log_path)


@contextlib.asynccontextmanager
async def running_stack(log_dir: Path) -> AsyncIterator[Stack]:
    """A broker with wardflow's topics; every process started is stopped on exit, whatever ends
    the block (error, Ctrl-C)."""
    stack = Stack(log_dir)
    try:
        stack.kafka = await start_kafka(log_dir)
        stack.settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka.url)
        await create_topics(stack.settings, PARTITIONS)
        yield stack
    finally:
        stack.stop()  # synchronous on purpose: a second cancellation cannot skip it


async def poll_http(
    url: str, ready: Callable[[str], bool], managed: ManagedProcess, timeout_seconds: float
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
    """User + system CPU seconds used so far by each process (not its children)."""
    used: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            used[name] = times.user + times.system
    return used


class Window:
    """The measured part of a scenario: after a warm-up, for a fixed duration; CPU read at both
    ends. An answer counts when its send (open loop) or arrival (closed loop) falls inside."""

    def __init__(self, pids: dict[str, int], options: Options, *, by_send_time: bool) -> None:
        self.pids = pids
        self.by_send_time = by_send_time  # open loop: by scheduled time; closed loop: by answer
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

    async def paced(self, per_second: float, send: Callable[[float], None]) -> None:
        """Open loop: `send(scheduled)` on a fixed timetable through warm-up and window; a late
        call is made at once, never skipped, so queueing shows in latency from `scheduled`."""
        started = time.perf_counter()
        total = int((self.options.warmup_seconds + self.options.duration_seconds) * per_second)
        for index in range(total):
            scheduled = started + index / per_second
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            send(scheduled)

    def record(self, sent: float, done: float, events: int, error: str | None) -> None:
        """One answer, sent (or scheduled) at `sent` and arrived at `done` (perf_counter)."""
        if error is None:
            self.total_events += events
        if not self.start <= (sent if self.by_send_time else done) <= self.end:
            return
        self.requests += 1
        self.last_done = max(self.last_done, done)
        if error is None:
            self.events += events
            self.latencies.append(done - sent)
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


async def topic_event_ids(kafka_url: str, topic: str, idle_seconds: float = 2.0) -> set[str]:
    """The distinct event ids on `topic`, read record by record from the beginning.

    Counting records by reading, not from offsets: the embedded broker's end offsets do not
    match its record count exactly.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_url,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    ids: set[str] = set()
    try:
        while batch := await consumer.getmany(
            timeout_ms=int(idle_seconds * 1000), max_records=10_000
        ):
            for records in batch.values():
                ids.update(str(orjson.loads(r.value or b"{}").get("event_id")) for r in records)
        return ids
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Target:
    """A goal from the issue, printed beside the figure; reported, never asserted."""

    metric: str  # dotted path into the figures, e.g. "ack_latency_ms.p99"
    threshold: float
    at_least: bool  # True: figure >= threshold; False: figure < threshold
    text: str

    def met(self, figures: dict[str, Any]) -> bool | None:
        value: Any = figures
        for part in self.metric.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, int | float):
            return None
        return value >= self.threshold if self.at_least else value < self.threshold


@dataclass(frozen=True)
class Scenario(Generic[C]):
    """One measured load pattern; `drive(context, window)` loads the system until the window is
    over (closed loop) or through warm-up and window on a timetable (open loop)."""

    name: str
    description: str
    drive: Callable[[C, Window], Awaitable[None]]
    open_loop_per_second: float | None = None  # None: closed loop
    target: Target | None = None


async def run_scenarios(
    context: C, scenarios: Sequence[Scenario[C]], stack: Stack, options: Options
) -> tuple[list[dict[str, Any]], int]:
    """Each scenario in its own window; the results and the events acknowledged in all."""
    results, acknowledged = [], 0
    for scenario in scenarios:
        offered = scenario.open_loop_per_second
        window = Window(stack.pids(), options, by_send_time=offered is not None)
        await asyncio.gather(window.run(), scenario.drive(context, window))
        figures = window.figures(offered)
        target = scenario.target
        verdict = None if target is None else {"text": target.text, "met": target.met(figures)}
        results.append({"name": scenario.name, "description": scenario.description, **figures,
                        "target": verdict})  # fmt: skip
        acknowledged += window.total_events
    return results, acknowledged


SEND_SLICE_SECONDS = 0.01  # timetables are kept in 10 ms slices


async def send_on_timetable(
    producer: AIOKafkaProducer,
    topic_name: str,
    per_second: float,
    seconds: float,
    record: Callable[[], tuple[bytes, bytes]],
) -> int:
    """`per_second` records made by `record()` (key, value) for `seconds`, sent in 10 ms slices
    so the rate holds however long a send takes; returns how many were sent (then flushed)."""
    sent, started = 0, time.perf_counter()
    total = int(seconds * per_second)
    while sent < total:
        due = min(total, int((time.perf_counter() - started) * per_second) + 1)
        for _ in range(due - sent):
            key, value = record()
            await producer.send(topic_name, value=value, key=key)
        sent = due
        await asyncio.sleep(SEND_SLICE_SECONDS)
    await producer.flush()
    return sent
