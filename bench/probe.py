"""Watching the processes under test while a rate runs: each stage's counters from its /metrics,
and each process's CPU time and resident memory from psutil, sampled on a fixed period.

A stage's backlog at a moment is what was written to its input topics (the producing stages'
`wardflow_events_out_total`) minus what it has taken in (its `wardflow_events_in_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import psutil

from bench.figures import slope

Labels = frozenset[tuple[str, str]]
Series = tuple[str, str, str]
"""(process, metric, topic label): e.g. ("fusion", "wardflow_events_in_total", "events.clean")."""
IN, OUT = "wardflow_events_in_total", "wardflow_events_out_total"
_LINE = re.compile(r"^(wardflow_[a-z_]+_total)(?:\{([^}]*)\})? ([0-9.eE+-]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_counters(text: str) -> dict[tuple[str, Labels], float]:
    """Every `wardflow_*_total` sample of a /metrics page, by (name, labels)."""
    counters: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match:
            name, labels, value = match.groups()
            counters[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return counters


def total(counters: Mapping[tuple[str, Labels], float], name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in counters.items() if n == name and wanted <= have)


@dataclass(frozen=True)
class Flow:
    """One stage's input: the series that write to it and the series it takes in with."""

    stage: str
    written: tuple[Series, ...]
    taken: tuple[Series, ...]


@dataclass
class Sample:
    at: float  # wall clock, epoch seconds
    counters: dict[str, dict[tuple[str, Labels], float]]  # process -> its counters
    cpu_seconds: dict[str, float]
    rss_bytes: dict[str, int]
    system_busy: float | None = None  # CPU seconds the whole machine has been busy

    def value(self, series: Series) -> float:
        process, metric, topic = series
        return total(self.counters.get(process, {}), metric, topic=topic)

    def backlog(self, flow: Flow) -> float:
        return sum(map(self.value, flow.written)) - sum(map(self.value, flow.taken))


@dataclass
class Probe:
    """Samples counters, CPU and RSS of `pids` (and of `metrics_urls`' stages); `local` adds the
    load generator's own counters (e.g. the relay driver's records written)."""

    metrics_urls: dict[str, str]
    pids: dict[str, int]
    local: Callable[[], dict[tuple[str, Labels], float]] | None = None
    samples: list[Sample] = field(default_factory=list)

    async def sample(self, client: httpx.AsyncClient) -> Sample:
        counters: dict[str, dict[tuple[str, Labels], float]] = {}
        for name, url in self.metrics_urls.items():
            with contextlib.suppress(httpx.HTTPError):
                counters[name] = parse_counters((await client.get(url)).text)
        if self.local is not None:
            counters["client"] = self.local()
        cpu: dict[str, float] = {}
        rss: dict[str, int] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                times = process.cpu_times()
                cpu[name] = times.user + times.system
                rss[name] = process.memory_info().rss
        sample = Sample(time.time(), counters, cpu, rss, machine_busy_seconds())
        self.samples.append(sample)
        return sample

    async def run(self, stop: asyncio.Event, period_seconds: float = 0.5) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not stop.is_set():
                started = time.perf_counter()
                await self.sample(client)
                with contextlib.suppress(TimeoutError):
                    left = period_seconds - (time.perf_counter() - started)
                    await asyncio.wait_for(stop.wait(), max(0.0, left))

    def between(self, start: float, end: float) -> list[Sample]:
        """The samples taken in [start, end]; at least two, or the window cannot be measured."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            raise RuntimeError(f"{len(inside)} samples in the measured window, need two")
        return inside


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")  # guest time is inside user
    return sum(getattr(times, name, 0.0) for name in busy)


def backlog_growth(samples: Sequence[Sample], flows: Sequence[Flow]) -> dict[str, float]:
    """Per stage, the least-squares slope of its backlog over `samples` (records/s)."""
    return {f.stage: slope([(s.at, s.backlog(f)) for s in samples]) for f in flows}


def inflow(first: Sample, last: Sample, flows: Sequence[Flow]) -> dict[str, float]:
    """Per stage, the records/s written to its input between two samples."""
    seconds = max(1e-9, last.at - first.at)
    return {
        f.stage: sum(last.value(s) - first.value(s) for s in f.written) / seconds for f in flows
    }


def rate(first: Sample, last: Sample, series: Series) -> float:
    return (last.value(series) - first.value(series)) / max(1e-9, last.at - first.at)


def drained(sample: Sample, flows: Sequence[Flow]) -> bool:
    return all(sample.backlog(flow) <= 0 for flow in flows)


def cpu_share(first: Sample, last: Sample) -> dict[str, float]:
    """Each process's CPU between two samples, as a share of one core."""
    seconds = max(1e-9, last.at - first.at)
    return {
        name: round((last.cpu_seconds[name] - first.cpu_seconds[name]) / seconds, 3)
        for name in last.cpu_seconds
        if name in first.cpu_seconds
    }


def other_load(first: Sample, last: Sample) -> float | None:
    """Cores busy with processes other than the ones measured (other work on the machine)."""
    if first.system_busy is None or last.system_busy is None:
        return None
    ours = sum(
        last.cpu_seconds[n] - first.cpu_seconds[n]
        for n in last.cpu_seconds
        if n in first.cpu_seconds
    )
    return round(max(0.0, (last.system_busy - first.system_busy - ours) / (last.at - first.at)), 2)


def peak_rss_mib(samples: Sequence[Sample]) -> dict[str, float]:
    peaks: dict[str, int] = {}
    for sample in samples:
        for name, rss in sample.rss_bytes.items():
            peaks[name] = max(peaks.get(name, 0), rss)
    return {name: round(rss / 2**20, 1) for name, rss in peaks.items()}
