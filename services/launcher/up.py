"""`wardflow up`: the whole pipeline on one machine, with a live view, stopped cleanly.

Starts the embedded broker and Redis (unless KAFKA_BOOTSTRAP_SERVERS / REDIS_URL name existing
ones), creates the topics, starts the five services and the simulator as separate processes, shows
live figures, and on Ctrl-C, SIGTERM or after `duration` stops everything it started and writes
var/summary.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live

from services.common.embedded import (
    FETCH_WAIT_MS,
    EmbeddedServer,
    free_port,
    start_kafka,
    start_redis,
)
from services.common.kafka import create_topics
from services.common.settings import ServiceSettings
from services.launcher.monitor import SERVICES, Outcomes, StageCounts, follow_outcomes, scrape
from services.launcher.processes import ManagedProcess, start_process, stop_all
from services.launcher.view import live_view, summary

log = logging.getLogger(__name__)

PREFERRED_PORTS = {
    "ingest": 9101,
    "cleaning": 9102,
    "fusion": 9103,
    "diagnosis": 9104,
    "scheduler": 9105,
}
DEV_SOURCE = "local-dev"
READY_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class UpOptions:
    duration_seconds: float = 0.0
    simulate: bool = True
    partitions: int = 4
    var_dir: Path = Path("var")


@dataclass
class Stack:
    """Everything `up` started, so that all of it can be stopped."""

    servers: list[EmbeddedServer] = field(default_factory=list)
    services: list[ManagedProcess] = field(default_factory=list)
    simulator: ManagedProcess | None = None
    endpoints: dict[str, Any] = field(default_factory=dict)


class StartupFailed(RuntimeError):
    pass


def run_up(options: UpOptions) -> int:
    console = Console()
    options.var_dir.mkdir(parents=True, exist_ok=True)
    (options.var_dir / "stack.json").unlink(missing_ok=True)  # an earlier run's: not ready yet
    logging.basicConfig(
        filename=options.var_dir / "up.log", level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )  # fmt: skip
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per scrape is noise
    try:
        return asyncio.run(_up(options, console))
    except StartupFailed as failure:
        console.print(f"[bold red]wardflow up failed:[/] {failure}")
        return 1


async def _up(options: UpOptions, console: Console) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    stack = Stack()
    outcomes = Outcomes()
    counts: dict[str, StageCounts] = {}
    healthy = False
    started = time.monotonic()
    follower: asyncio.Task[None] | None = None
    follower_stop = asyncio.Event()
    try:
        await _start(options, stack, console)
        endpoints = stack.endpoints
        follower = asyncio.create_task(
            follow_outcomes(
                endpoints["kafka_bootstrap_servers"],
                endpoints["topic_prefix"],
                outcomes,
                follower_stop,
            )
        )
        counts, healthy = await _watch(options, stack, outcomes, stop, console, started)
    finally:
        log.info("stopping")
        if stack.simulator is not None:
            stop_all([stack.simulator])
            counts = await _drain(stack) or counts
        follower_stop.set()
        if follower is not None:
            with contextlib.suppress(Exception):
                await follower
        stop_all(stack.services)
        for server in reversed(stack.servers):
            server.stop()
        if stack.endpoints:
            result = summary(counts, outcomes, time.monotonic() - started)
            (options.var_dir / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
            console.print_json(data=result)
            console.print(f"summary written to {options.var_dir / 'summary.json'}")
    return 0 if healthy else 1


async def _start(options: UpOptions, stack: Stack, console: Console) -> None:
    logs = options.var_dir / "logs"
    kafka_url = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    redis_url = os.environ.get("REDIS_URL", "")
    with console.status("starting the broker and Redis"):
        if not kafka_url:
            stack.servers.append(await start_kafka(logs))
            kafka_url = stack.servers[-1].url
        if not redis_url:
            stack.servers.append(await start_redis(logs, options.var_dir / "redis"))
            redis_url = stack.servers[-1].url
    embedded_kafka = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    log.info("broker=%s redis=%s embedded_kafka=%s", kafka_url, redis_url, embedded_kafka)
    base = ServiceSettings(kafka_bootstrap_servers=kafka_url)
    await create_topics(base, options.partitions)
    api_key = os.environ.get("WARDFLOW_DEV_API_KEY") or secrets.token_urlsafe(24)
    pseudonym_key = _pseudonym_key(options.var_dir)
    http_ports = {"ingest": free_port(8080), "scheduler": free_port(8081)}
    mllp_port = free_port(2575)
    metrics_ports = {name: free_port(port) for name, port in PREFERRED_PORTS.items()}
    common_env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_url,
        "REDIS_URL": redis_url,
        "WARDFLOW_PARTITIONS": str(options.partitions),
    }
    if embedded_kafka:  # Tansu answers a long-poll only when the wait expires: keep it short
        common_env |= {
            "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS),
            "WARDFLOW_KAFKA_SESSION_TIMEOUT_MS": "10000",
        }
    with console.status("starting ingest, cleaning, fusion, diagnosis and scheduler"):
        for name in SERVICES:
            env = {**common_env, "WARDFLOW_METRICS_PORT": str(metrics_ports[name])}
            if name in http_ports:
                env["WARDFLOW_HTTP_PORT"] = str(http_ports[name])
            if name in ("ingest", "scheduler"):  # one dev key: send to ingest, read the scheduler
                env["WARDFLOW_API_KEYS"] = json.dumps({DEV_SOURCE: api_key})
            if name == "ingest":
                env["WARDFLOW_PSEUDONYM_KEY"] = pseudonym_key
                env["WARDFLOW_MLLP_PORT"] = str(mllp_port)
            stack.services.append(start_process(name, ["service", name], env, logs))
        metrics_urls = {n: f"http://127.0.0.1:{p}/metrics" for n, p in metrics_ports.items()}
        await _wait_ready(stack.services, metrics_urls)
    ingest_url = f"http://127.0.0.1:{http_ports['ingest']}"
    scheduler_url = f"http://127.0.0.1:{http_ports['scheduler']}"
    stack.endpoints = {
        "kafka_bootstrap_servers": kafka_url,
        "redis_url": redis_url,
        "topic_prefix": base.topic_prefix,
        "embedded": {"kafka": embedded_kafka, "redis": not os.environ.get("REDIS_URL")},
        "ingest_url": ingest_url,
        "mllp": {
            "host": "127.0.0.1",
            "port": mllp_port,
            "senders": "any sending application (development source)",
        },
        "scheduler_url": scheduler_url,
        "metrics_urls": metrics_urls,
        "credential": {
            "source": DEV_SOURCE,
            "api_key": api_key,
            "header": f"Authorization: Bearer {api_key}",
        },
        "logs": str(logs),
    }
    if options.simulate:
        env = {
            "WARDFLOW_SIMULATOR_INGEST_URL": ingest_url,
            "WARDFLOW_SIMULATOR_SCHEDULER_URL": scheduler_url,
            "WARDFLOW_SIMULATOR_API_KEY": api_key,
        }
        stack.simulator = start_process("simulator", ["simulate"], env, logs)
    # Written last, and whole (renamed into place): its presence says everything is running.
    endpoints = options.var_dir / "stack.json"
    partial = endpoints.with_suffix(".json.partial")
    partial.write_text(json.dumps(stack.endpoints, indent=2) + "\n")
    partial.replace(endpoints)
    log.info("stack ready services=%d simulate=%s", len(stack.services), options.simulate)


async def _wait_ready(processes: list[ManagedProcess], metrics_urls: dict[str, str]) -> None:
    """Poll every service's /metrics until it reports ready; fail fast if one exits."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    waiting = {p.name for p in processes}
    async with httpx.AsyncClient() as client:
        while waiting:
            for process in processes:
                if not process.alive():
                    raise StartupFailed(f"{process.name} exited:\n{process.log_tail()}")
            for name in sorted(waiting):
                with contextlib.suppress(httpx.HTTPError):
                    page = (await client.get(metrics_urls[name], timeout=1.0)).text
                    if f'wardflow_stage_ready{{stage="{name}"}} 1.0' in page:
                        waiting.discard(name)
            if time.monotonic() > deadline:
                raise StartupFailed(
                    f"not ready after {READY_TIMEOUT_SECONDS:.0f} s: {sorted(waiting)}"
                )
            await asyncio.sleep(0.25)


async def _watch(
    options: UpOptions,
    stack: Stack,
    outcomes: Outcomes,
    stop: asyncio.Event,
    console: Console,
    started: float,
) -> tuple[dict[str, StageCounts], bool]:
    """Refresh the live view until stopped, the duration passes, or a service dies (then the
    second value is False)."""
    urls = stack.endpoints["metrics_urls"]
    header = (
        f"wardflow is running - ingest {stack.endpoints['ingest_url']}, "
        f"MLLP 127.0.0.1:{stack.endpoints['mllp']['port']}, "
        f"scheduler {stack.endpoints['scheduler_url']}; "
        f"endpoints in {options.var_dir / 'stack.json'}; "
        "Ctrl-C stops"
    )
    counts: dict[str, StageCounts] = {}
    previous: dict[str, StageCounts] = {}
    last = time.monotonic()
    async with httpx.AsyncClient() as client:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                now = time.monotonic()
                counts = await scrape(client, urls)
                rates = {
                    name: (
                        (c.events_in - previous.get(name, StageCounts()).events_in) / (now - last),
                        (c.events_out - previous.get(name, StageCounts()).events_out)
                        / (now - last),
                    )
                    for name, c in counts.items()
                }
                previous, last = counts, now
                elapsed = now - started
                live.update(
                    live_view(counts, rates, outcomes, f"{header} - {elapsed:,.0f} s"), refresh=True
                )
                dead = [p.name for p in stack.services if not p.alive()]
                if dead:
                    log.error("services exited: %s", ", ".join(dead))
                    console.print(
                        f"[bold red]stopping: {', '.join(dead)} exited; "
                        f"see {options.var_dir}/logs[/]"
                    )
                    return counts, False
                if options.duration_seconds and elapsed >= options.duration_seconds:
                    break
    return counts, True


async def _drain(stack: Stack, timeout_seconds: float = 15.0) -> dict[str, StageCounts]:
    """After the simulator stops, wait until every stage has caught up (counts stop moving)."""
    urls = stack.endpoints.get("metrics_urls", {})
    deadline = time.monotonic() + timeout_seconds
    last: dict[str, StageCounts] = {}
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            counts = await scrape(client, urls)
            if counts and counts == last:
                return counts
            last = counts
            await asyncio.sleep(1.0)
    return last


def _pseudonym_key(var_dir: Path) -> str:
    """The development pseudonym key: WARDFLOW_PSEUDONYM_KEY, else one kept in var/ (mode 0600)
    so that patient keys stay the same from run to run against a persistent broker."""
    configured = os.environ.get("WARDFLOW_PSEUDONYM_KEY")
    if configured:
        return configured
    path = var_dir / "pseudonym.key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()
