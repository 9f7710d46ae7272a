"""Running one service process: logging, /metrics, signals, and a clean stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

import uvloop

from services.common.logs import configure_logging
from services.common.metrics import serve_metrics
from services.common.settings import ServiceSettings
from services.common.stage import StageRunner

log = logging.getLogger(__name__)


def run_service(
    name: str,
    settings: ServiceSettings,
    main: Callable[[asyncio.Event], Awaitable[None]],
) -> None:
    """Run `main(stop)` until it returns or SIGINT/SIGTERM sets `stop`."""
    configure_logging(name, settings.log_level)
    serve_metrics(settings.metrics_host, settings.metrics_port)

    async def supervised() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info("starting metrics_port=%d", settings.metrics_port)
        # Everything imported so far lives as long as the process: keep it out of the
        # collector's way, so a full collection does not pause a stream for tens of ms.
        gc.freeze()
        # Streams allocate many short-lived objects: collect the young generation less often.
        gc.set_threshold(20_000, 20, 20)
        await main(stop)
        log.info("stopped")

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(supervised())


async def until_stopped(stop: asyncio.Event, *tasks: asyncio.Task[None]) -> None:
    """Wait for a stop request or for any task to end; a task's failure is re-raised."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for task in done:
        if task is not waiter:
            task.result()


async def run_stage(runner: StageRunner, stop: asyncio.Event) -> None:
    """Run a stage until a stop request; a failed stage ends the process with its error."""
    task = asyncio.create_task(runner.run())
    try:
        await until_stopped(stop, task)
    finally:
        runner.stop()
        await asyncio.gather(task, return_exceptions=True)
