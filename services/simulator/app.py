"""The simulator's transport shell: steps the pure hospital on a clock, posts its events to ingest.

It drives the stack as a hospital would, only through ingest's HTTP API. Each tick advances
simulated time by `speedup` x the real time elapsed, sends that tick's events in order (at most 500
per request), and every few seconds asks the scheduler which beds are dirty for housekeeping.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import signal
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from services.common.logs import configure_logging
from services.simulator.config import SimulatorSettings
from services.simulator.domain import WARDS, Hospital, HospitalConfig
from services.simulator.events import CompressedClock, Payload

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
MAX_EVENTS_PER_REQUEST = 500
MAX_SEND_ATTEMPTS = 5
MAX_RETRY_AFTER_SECONDS = 30.0
REQUEST_TIMEOUT_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 2.0  # ingest /healthz and the scheduler's bed lists
PROGRESS_LOG_SECONDS = 30.0


class IngestUnavailable(RuntimeError):
    """Ingest did not become healthy in time, or refused the simulator's API key."""


@dataclass
class SimulatorStats:
    events_sent: int = 0  # events posted (a retried batch counts once)
    events_accepted: int = 0
    events_refused: int = 0  # refused by ingest as invalid: a simulator bug
    events_dropped: int = 0  # given up after retries, or stopped while retrying
    requests: int = 0
    retries: int = 0
    housekeeping_polls_failed: int = 0
    load_events_skipped: int = 0  # load mode fell more than a second behind its target rate


def hospital_config(settings: SimulatorSettings) -> HospitalConfig:
    return HospitalConfig(
        initial_patients=settings.monitored_patients,
        arrivals_per_hour=settings.arrivals_per_hour,
        mean_stay_hours=settings.mean_stay_hours,
        vitals_interval_seconds=settings.vitals_interval_seconds,
        scheduled_vitals=settings.target_events_per_second == 0,
        ceiling_general_fraction=settings.ceiling_general_fraction,
        ceiling_hdu_fraction=settings.ceiling_hdu_fraction,
        suspected_infection_probability=settings.suspected_infection_probability,
        acknowledgement_mean_minutes=settings.acknowledgement_mean_minutes,
        never_acknowledged_fraction=settings.never_acknowledged_fraction,
        lab_after_onset_minutes=settings.lab_after_onset_minutes,
    )


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; True if `stop` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except TimeoutError:
        return False
    return True


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    """The Retry-After header (seconds or HTTP date), bounded to [0.05, 30] seconds."""
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            seconds = default
    if not math.isfinite(seconds):
        seconds = default
    return min(max(seconds, 0.05), MAX_RETRY_AFTER_SECONDS)


class IngestClient:
    """Posts events to `POST /v1/events`, retrying a batch (same event ids) when ingest says so."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: SimulatorSettings,
        stats: SimulatorStats,
        stop: asyncio.Event,
    ) -> None:
        self.client, self.stats, self.stop = client, stats, stop
        self.url = f"{settings.ingest_url.rstrip('/')}/v1/events"
        self.health_url = f"{settings.ingest_url.rstrip('/')}/healthz"
        self.headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"}
        self.startup_timeout_seconds = settings.startup_timeout_seconds

    async def wait_until_ready(self) -> bool:
        """True once /healthz answers 200; False if stopped first; raises after the deadline."""
        deadline = time.monotonic() + self.startup_timeout_seconds
        while time.monotonic() < deadline:
            try:
                response = await self.client.get(self.health_url, timeout=PROBE_TIMEOUT_SECONDS)
                if response.status_code == 200:
                    log.info("ingest ready url=%s", self.health_url)
                    return True
            except httpx.HTTPError:
                pass
            if await _stopped_within(self.stop, 0.5):
                return False
        raise IngestUnavailable(f"ingest not healthy after {self.startup_timeout_seconds:g}s")

    async def send(self, events: list[Payload]) -> None:
        for first in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            await self._post(events[first : first + MAX_EVENTS_PER_REQUEST])

    async def _post(self, batch: list[Payload]) -> None:
        self.stats.events_sent += len(batch)
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            delay = min(0.5 * 2**attempt, MAX_RETRY_AFTER_SECONDS)
            try:
                self.stats.requests += 1
                response = await self.client.post(
                    self.url, json={"events": batch}, headers=self.headers
                )
            except httpx.HTTPError as error:
                log.warning("ingest unreachable attempt=%d error=%s", attempt, type(error).__name__)
            else:
                if response.status_code in (503, 429):
                    delay = retry_after_seconds(response, delay)
                    log.warning(
                        "ingest busy status=%d retry_after=%.2f", response.status_code, delay
                    )
                elif response.status_code < 500:
                    self._settle(batch, response)
                    return
                else:
                    log.warning("ingest failed status=%d attempt=%d", response.status_code, attempt)
            if attempt == MAX_SEND_ATTEMPTS or await _stopped_within(self.stop, delay):
                break
            self.stats.retries += 1
        self.stats.events_dropped += len(batch)
        log.error("batch dropped events=%d after attempts=%d", len(batch), attempt)

    def _settle(self, batch: list[Payload], response: httpx.Response) -> None:
        """Count a final answer: 202 accepted (maybe partly), 401/403 fatal, other 4xx refused."""
        if response.status_code in (401, 403):
            raise IngestUnavailable(f"ingest refused the API key (HTTP {response.status_code})")
        body = _json_or_empty(response)
        accepted = body.get("accepted") if response.status_code == 202 else None
        accepted_count = len(accepted) if isinstance(accepted, list) else 0
        self.stats.events_accepted += accepted_count
        self.stats.events_refused += len(batch) - accepted_count
        errors = body.get("errors")
        if response.status_code == 202 or not isinstance(errors, list):
            return
        log.error("ingest refused status=%d events=%d", response.status_code, len(batch))
        for item in errors[:5]:  # kind, field and problem only: values may be PHI
            error = item if isinstance(item, dict) else {}
            index = error.get("index")
            kind = None
            if isinstance(index, int) and 0 <= index < len(batch):
                kind = batch[index].get("kind")
            log.error(
                "refused event index=%s kind=%s field=%.100s problem=%.200s (simulator bug)",
                index,
                kind,
                error.get("field"),
                error.get("problem"),
            )


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def dirty_beds(
    client: httpx.AsyncClient, scheduler_url: str, api_key: str = ""
) -> list[tuple[str, str]] | None:
    """Every `(ward, bed)` the scheduler reports dirty, or None if any ward could not be read.
    The scheduler's API wants the same key as ingest (a reader's key)."""
    base = scheduler_url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        responses = await asyncio.gather(
            *(
                client.get(
                    f"{base}/v1/wards/{ward}/beds", headers=headers, timeout=PROBE_TIMEOUT_SECONDS
                )
                for ward in WARDS
            )
        )
    except httpx.HTTPError:
        return None
    dirty: list[tuple[str, str]] = []
    for ward, response in zip(WARDS, responses, strict=True):
        beds = _json_or_empty(response).get("beds") if response.status_code == 200 else None
        if not isinstance(beds, list):
            return None
        dirty.extend(
            (ward, str(bed["bed"]))
            for bed in beds
            if isinstance(bed, dict) and bed.get("status") == "dirty" and bed.get("bed")
        )
    return dirty


class LoadPacer:
    """How many load events are due to keep a real rate; never more than one second's worth."""

    def __init__(self, events_per_second: float) -> None:
        self.rate = events_per_second
        self.issued = 0

    def due(self, elapsed_seconds: float, stats: SimulatorStats) -> int:
        target = int(elapsed_seconds * self.rate)
        due = target - self.issued
        burst = max(1, math.ceil(self.rate))
        if due > burst:
            stats.load_events_skipped += due - burst
            due = burst
        self.issued = target
        return max(0, due)


async def _simulate(
    settings: SimulatorSettings,
    client: httpx.AsyncClient,
    ingest: IngestClient,
    stop: asyncio.Event,
    stats: SimulatorStats,
) -> None:
    started, wall_start = time.monotonic(), datetime.now(UTC)
    clock = CompressedClock(wall_start, settings.speedup)
    rng, config = random.Random(settings.seed), hospital_config(settings)
    if settings.occurred_at_clock == "wall":
        hospital = Hospital(config, rng, wall_start, stamp=clock.wall)
    else:
        hospital = Hospital(config, rng, wall_start)
    rate = settings.target_events_per_second
    pacer = LoadPacer(rate) if rate > 0 else None
    next_poll = next_progress = 0.0
    log.info("simulating speedup=%g load_events_per_second=%g", settings.speedup, rate)
    while not stop.is_set():
        tick_started = time.monotonic()
        elapsed = tick_started - started
        if settings.duration_seconds and elapsed >= settings.duration_seconds:
            break
        if settings.housekeeping_poll_seconds and elapsed >= next_poll:
            next_poll = elapsed + settings.housekeeping_poll_seconds
            dirty = await dirty_beds(
                client, settings.scheduler_url, settings.api_key.get_secret_value()
            )
            if dirty is None:  # the scheduler is unreachable: no housekeeping this round
                stats.housekeeping_polls_failed += 1
            else:
                hospital.beds_to_clean(dirty)
        now = clock.simulated(wall_start + timedelta(seconds=elapsed))
        events = hospital.step(now)
        if pacer is not None:
            events += hospital.readings(now, pacer.due(elapsed, stats))
        await ingest.send(events)
        if elapsed >= next_progress:
            next_progress = elapsed + PROGRESS_LOG_SECONDS
            log.info("progress census=%d %s", len(hospital.patients), _fields(stats))
        if await _stopped_within(stop, TICK_SECONDS - (time.monotonic() - tick_started)):
            break


def _fields(stats: SimulatorStats) -> str:
    return " ".join(f"{name}={value}" for name, value in asdict(stats).items())


async def run_simulator(
    settings: SimulatorSettings,
    stop: asyncio.Event | None = None,
) -> SimulatorStats:
    """Run until `duration_seconds` pass (0: until `stop` is set); the counts of what was sent."""
    stop = asyncio.Event() if stop is None else stop
    stats = SimulatorStats()
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as client:
        ingest = IngestClient(client, settings, stats, stop)
        if await ingest.wait_until_ready():
            await _simulate(settings, client, ingest, stop, stats)
    log.info("simulator stopped %s", _fields(stats))
    return stats


def main(settings: SimulatorSettings | None = None) -> SimulatorStats:
    """Run the simulator in this process until done or SIGINT/SIGTERM."""
    settings = settings or SimulatorSettings()
    configure_logging("simulator", settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request

    async def until_signalled() -> SimulatorStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            return await run_simulator(settings, stop)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    return asyncio.run(until_signalled())
