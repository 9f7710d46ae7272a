"""The pipeline's load: patients of the simulator's hospital, posted to ingest on a timetable.

Each offered rate gets its own cohort of patients, made by the simulator's pure `Hospital`
(`initial_patients`, no arrivals, vital signs only on demand): before the timetable their
admissions, the care events the simulator plans with them (ceilings of care) and one first monitor
reading each are posted; on the timetable their vital signs (the simulator's physiology, patients
in turn, `Hospital.readings`); after it their discharges. Patient and encounter ids carry the
cohort's number, so two cohorts never share a patient.

The timetable is open loop: every SLICE_SECONDS the readings due are posted as one request, on
its own task, whether or not earlier answers have come back; request bodies are made before the
timetable starts, so the load generator only sends while it is measured.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from random import Random
from uuid import uuid4

import orjson

from bench.figures import slice_counts
from bench.http_client import HttpFailure, KeepAlivePool
from services.simulator.domain import Hospital, HospitalConfig
from services.simulator.events import Payload

SLICE_SECONDS = 0.02
MAX_EVENTS_PER_REQUEST = 500  # ingest's default max_events_per_request
CONNECTIONS = 16
TIMEOUT_SECONDS = 10.0
BURST_CONCURRENCY = 4  # requests in flight while posting admissions and discharges


class Cohort:
    """`patients` patients admitted together at `start`."""

    def __init__(self, number: int, patients: int, start: datetime) -> None:
        config = HospitalConfig(
            initial_patients=patients, arrivals_per_hour=0.0, scheduled_vitals=False
        )
        self.hospital = Hospital(config, Random(number), start)
        self.prefix = f"C{number}-"
        self.patients = patients
        self.start = start

    def _tagged(self, payloads: list[Payload]) -> list[Payload]:
        for payload in payloads:
            for name in ("patient_id", "encounter_id"):
                if name in payload:
                    payload[name] = self.prefix + payload[name]
        return payloads

    def admissions(self) -> list[Payload]:
        """Every admission with its care events, then one first reading per patient."""
        admitted = self.hospital.step(self.start)
        return self._tagged(admitted + self.hospital.readings(self.start, self.patients))

    def readings(self, at: datetime, count: int) -> list[Payload]:
        return self._tagged(self.hospital.readings(at, count))

    def discharges(self, at: datetime) -> list[Payload]:
        return self._tagged(
            [
                {
                    "kind": "PatientDischarged",
                    "event_id": str(uuid4()),
                    "occurred_at": at.isoformat(),
                    "patient_id": patient.patient_id,
                    "encounter_id": patient.encounter_id,
                    "ward": patient.ward,
                }
                for patient in self.hospital.patients.values()
            ]
        )


def bodies(payloads: Sequence[Payload]) -> list[tuple[bytes, int]]:
    """Request bodies of at most MAX_EVENTS_PER_REQUEST events, with their event counts."""
    return [
        (orjson.dumps({"events": payloads[i : i + MAX_EVENTS_PER_REQUEST]}),
         len(payloads[i : i + MAX_EVENTS_PER_REQUEST]))
        for i in range(0, len(payloads), MAX_EVENTS_PER_REQUEST)
    ]  # fmt: skip


def timetable(
    cohort: Cohort, per_second: float, seconds: float, start_epoch: float
) -> list[list[tuple[bytes, int]]]:
    """The request bodies of each slice; readings are stamped with their slice's due time."""
    slices = []
    for index, count in enumerate(slice_counts(per_second, seconds, SLICE_SECONDS)):
        at = datetime.fromtimestamp(start_epoch + index * SLICE_SECONDS, UTC)
        slices.append(bodies(cohort.readings(at, count)) if count else [])
    return slices


@dataclass
class Sent:
    """What ingest answered: the ids it accepted, the failures by kind, and for each request
    the scheduled send time (epoch) and the ACK latency from it."""

    accepted: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    acks: list[tuple[float, float]] = field(default_factory=list)
    max_lag_seconds: float = 0.0  # how late the generator was with a send, at worst

    def ack_latencies(self, start: float, end: float) -> list[float]:
        return [latency for at, latency in self.acks if start <= at <= end]


class Poster:
    """POST /v1/events over a keep-alive pool; every answer is checked and counted."""

    def __init__(self, pool: KeepAlivePool) -> None:
        self.pool = pool
        self.sent = Sent()
        self.tasks: set[asyncio.Task[None]] = set()

    async def post(self, body: bytes, events: int, scheduled_epoch: float) -> None:
        try:
            status, answer = await asyncio.wait_for(
                self.pool.post("/v1/events", body), TIMEOUT_SECONDS
            )
        except (HttpFailure, TimeoutError) as failure:
            self.sent.errors[type(failure).__name__] += 1
            return
        done = time.time()
        if status != 202:
            self.sent.errors[f"http_{status}"] += 1
            return
        accepted = orjson.loads(answer).get("accepted")
        if not isinstance(accepted, list) or len(accepted) != events:
            self.sent.errors["short_accept"] += 1
            return
        self.sent.accepted.update(accepted)
        self.sent.acks.append((scheduled_epoch, done - scheduled_epoch))

    async def burst(self, requests: list[tuple[bytes, int]]) -> None:
        """Closed loop, a few requests in flight: admissions and discharges."""
        queue = iter(requests)

        async def worker() -> None:
            for body, events in queue:
                await self.post(body, events, time.time())

        await asyncio.gather(*(worker() for _ in range(BURST_CONCURRENCY)))

    async def on_timetable(self, slices: list[list[tuple[bytes, int]]], start_epoch: float) -> None:
        """Open loop: slice i's requests are sent at start + i x SLICE_SECONDS (wall clock)."""
        for index, requests in enumerate(slices):
            due = start_epoch + index * SLICE_SECONDS
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.sent.max_lag_seconds = max(self.sent.max_lag_seconds, -delay)
            for body, events in requests:
                task = asyncio.create_task(self.post(body, events, due))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=TIMEOUT_SECONDS + 5)
