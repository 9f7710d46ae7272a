"""Helpers for tests against the real broker: publish, collect with a deadline, poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.codec import decode, encode
from schemas.topics import TopicSpec, full_name
from services.common.settings import ServiceSettings


async def publish(
    producer: AIOKafkaProducer, settings: ServiceSettings, spec: TopicSpec, *events: Any
) -> None:
    for event in events:
        await producer.send_and_wait(
            full_name(spec, settings.topic_prefix), value=encode(event), key=event.kafka_key()
        )


async def collect(
    kafka_url: str,
    settings: ServiceSettings,
    spec: TopicSpec,
    until: Callable[[list[Any]], bool],
    timeout_seconds: float = 30.0,
) -> list[Any]:
    """Read a topic from the beginning until `until(events)` holds; fails at the deadline."""
    consumer = AIOKafkaConsumer(
        full_name(spec, settings.topic_prefix),
        bootstrap_servers=kafka_url,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    events: list[Any] = []
    deadline = time.monotonic() + timeout_seconds
    try:
        while not until(events):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{spec.name}: condition not met in {timeout_seconds} s; got {events!r}"
                )
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                events.extend(decode(spec, r.value) for r in records)
        return events
    finally:
        await consumer.stop()


async def eventually(check: Callable[[], Awaitable[bool]], timeout_seconds: float = 20.0) -> None:
    """Poll `check` until true; fails at the deadline instead of sleeping a guessed time."""
    deadline = time.monotonic() + timeout_seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout_seconds} s")
        await asyncio.sleep(0.05)


class RunningStage:
    """Run a StageRunner in this event loop for the duration of an `async with`."""

    def __init__(self, runner: Any, ready_timeout_seconds: float = 30.0) -> None:
        self.runner = runner
        self.ready_timeout_seconds = ready_timeout_seconds
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Any:
        self.task = asyncio.create_task(self.runner.run())
        ready = asyncio.create_task(self.runner.ready.wait())
        done, _ = await asyncio.wait(
            {ready, self.task},
            timeout=self.ready_timeout_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self.task in done:
            ready.cancel()
            self.task.result()
            raise AssertionError("stage ended before it was ready")
        if ready not in done:
            ready.cancel()
            raise AssertionError(f"stage not ready in {self.ready_timeout_seconds} s")
        return self.runner

    async def __aexit__(self, *exc: object) -> None:
        self.runner.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, timeout=15)


def metric_value(name: str, **labels: str) -> float:
    """The current value of a metric sample in this process's default registry (0 if absent)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


class ServiceProcess:
    """`wardflow service <name>` as a real OS process, for the duration of an `async with`."""

    def __init__(self, name: str, env: dict[str, str], log_path: Any, metrics_port: int) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.metrics_port = metrics_port
        self.process: Any = None

    async def __aenter__(self) -> ServiceProcess:
        import os
        import subprocess

        from services.launcher.processes import wardflow_command

        env = {**os.environ, **self.env, "WARDFLOW_METRICS_PORT": str(self.metrics_port)}
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*wardflow_command(), "service", self.name], env=env, stdout=log, stderr=log
            )
        await self.wait_ready()
        return self

    async def wait_ready(self, timeout_seconds: float = 60.0) -> None:
        import httpx

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        marker = f'wardflow_stage_ready{{stage="{self.name}"}} 1.0'
        deadline = time.monotonic() + timeout_seconds
        async with httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited: {Path(self.log_path).read_text()[-3000:]}"
                    )
                try:
                    if marker in (await client.get(url, timeout=1)).text:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name} not ready in {timeout_seconds} s")
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    async def __aexit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            await asyncio.to_thread(self.process.wait, 30)
