"""Ingest scenarios: HTTP batches and single events, HL7 ORU^R01 over MLLP, closed and open loop.

Ingest runs as its own OS process (`wardflow service ingest`) in front of the embedded broker; the
load comes from this process over loopback. Every answer is checked: an HTTP answer other than 202
with every event id, or an ACK other than AA for the control id sent, is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any
from uuid import uuid4

import orjson

from bench.common import (
    Options,
    Scenario,
    Stack,
    Target,
    Window,
    poll_http,
    run_scenarios,
    running_stack,
    topic_event_ids,
)
from bench.http_client import HttpFailure, KeepAlivePool
from schemas.topics import EVENTS_RAW
from services.common.embedded import free_port
from services.common.kafka import topic

BATCH_EVENTS = 100
HTTP_WORKERS = 8
MLLP_CONNECTIONS = 4
OPEN_LOOP_PER_SECOND = 500.0
TIMEOUT_SECONDS = 10.0
DRAIN_SECONDS = 15.0  # after the window, for answers still owed
VT, FS, CR = b"\x0b", b"\x1c", b"\r"
# parameter, UCUM unit, LOINC, plausible low and high
VITALS = [
    ("heart_rate", "/min", "8867-4", 48.0, 130.0),
    ("respiratory_rate", "/min", "9279-1", 10.0, 28.0),
    ("spo2", "%", "59408-5", 88.0, 100.0),
    ("systolic_bp", "mm[Hg]", "8480-6", 90.0, 170.0),
    ("diastolic_bp", "mm[Hg]", "8462-4", 50.0, 100.0),
    ("temperature", "Cel", "8310-5", 35.8, 39.2),
]
P99_TARGET = Target("ack_latency_ms.p99", 20.0, False, "ACK p99 < 20 ms")


class Payloads:
    """Realistic vital signs for a few thousand patients, each event with a fresh id."""

    def __init__(self, seed: int) -> None:
        self.random = Random(seed)
        self.prefix = f"B{secrets.token_hex(3)}{seed}"  # control ids never repeat across runs
        self.sequence = 0

    def measurements(self) -> list[tuple[str, str, str, float]]:
        chosen = list(VITALS)
        if self.random.random() < 0.5:  # half of the observations miss one parameter: 5 or 6
            chosen.pop(self.random.randrange(len(chosen)))
        return [
            (p, unit, loinc, round(self.random.uniform(lo, hi), 1))
            for p, unit, loinc, lo, hi in chosen
        ]

    def vitals(self, occurred_at: str) -> dict[str, Any]:
        return {
            "kind": "VitalSignsObserved",
            "event_id": str(uuid4()),
            "occurred_at": occurred_at,
            "patient_id": f"MRN-{self.random.randrange(5000):05d}",
            "device_id": f"MON-{self.random.randrange(400):03d}",
            "measurements": [
                {"parameter": p, "value": v, "unit": u, "loinc": code}
                for p, u, code, v in self.measurements()
            ],
        }

    def json_body(self, events: int) -> bytes:
        occurred_at = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
        if events == 1:
            return orjson.dumps(self.vitals(occurred_at))
        return orjson.dumps({"events": [self.vitals(occurred_at) for _ in range(events)]})

    def oru_frame(self) -> tuple[str, bytes]:
        """An ORU^R01 (one VitalSignsObserved), MLLP-framed, and its control id."""
        self.sequence += 1
        control_id = f"{self.prefix}-{self.sequence}"
        now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
        segments = [
            f"MSH|^~\\&|MONITORS|MAINHOSP|WARDFLOW|WARDFLOW|{now}||ORU^R01^ORU_R01|{control_id}"
            "|P|2.5",
            f"PID|1||MRN-{self.random.randrange(5000):05d}^^^MAINHOSP^MR||DOE^JANE",
            f"OBR|1|||vitals^Vital signs|||{now}",
            *(
                f"OBX|{i}|NM|{loinc}^^LN||{value:g}|{unit}|||||F|||{now}"
                for i, (_, unit, loinc, value) in enumerate(self.measurements(), start=1)
            ),
        ]
        return control_id, VT + "\r".join(segments).encode() + FS + CR


def ack_error(reply: bytes, control_id: str) -> str | None:
    """None for an AA that answers `control_id`, else what was wrong."""
    for segment in reply.strip(VT + FS + CR).decode(errors="replace").split("\r"):
        if segment.startswith("MSA"):
            fields = segment.split("|")
            code = fields[1] if len(fields) > 1 else ""
            if code != "AA":
                return f"ack_{code or 'missing'}"
            return None if len(fields) > 2 and fields[2] == control_id else "ack_other_control_id"
    return "ack_without_msa"


@dataclass(frozen=True)
class Ingest:
    """The ingest process under test, as a client sees it."""

    base_url: str
    auth: dict[str, str]
    mllp_port: int

    @contextlib.asynccontextmanager
    async def client(self, connections: int) -> AsyncIterator[KeepAlivePool]:
        host, port = self.base_url.removeprefix("http://").rsplit(":", 1)
        pool = KeepAlivePool(host, int(port), self.auth, connections)
        try:
            yield pool
        finally:
            await pool.close()


async def post(client: KeepAlivePool, body: bytes, events: int) -> str | None:
    """POST /v1/events; None when all `events` were accepted (202), else what went wrong."""
    try:
        status, answer = await asyncio.wait_for(client.post("/v1/events", body), TIMEOUT_SECONDS)
    except (HttpFailure, TimeoutError) as failure:
        return type(failure).__name__
    if status != 202:
        return f"http_{status}"
    accepted = orjson.loads(answer).get("accepted")
    return None if isinstance(accepted, list) and len(accepted) == events else "short_accept"


async def http_batches(ingest: Ingest, window: Window) -> None:
    """Closed loop: HTTP_WORKERS workers, each posting the next batch after the answer."""
    async with ingest.client(HTTP_WORKERS) as client:

        async def worker(seed: int) -> None:
            payloads = Payloads(seed)
            while not window.over.is_set():
                body = payloads.json_body(BATCH_EVENTS)
                sent = time.perf_counter()
                error = await post(client, body, BATCH_EVENTS)
                window.record(sent, time.perf_counter(), BATCH_EVENTS, error)
                if error is not None:
                    await asyncio.sleep(0.01)  # no hot loop against a failing service

        await asyncio.gather(*(worker(seed) for seed in range(HTTP_WORKERS)))


async def http_single_paced(ingest: Ingest, window: Window) -> None:
    """Open loop: one event per request at OPEN_LOOP_PER_SECOND, each request its own task."""
    payloads, tasks = Payloads(100), set()
    async with ingest.client(64) as client:

        async def one(scheduled: float) -> None:
            error = await post(client, payloads.json_body(1), 1)
            window.record(scheduled, time.perf_counter(), 1, error)

        def send(scheduled: float) -> None:
            task = asyncio.create_task(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        await window.paced(OPEN_LOOP_PER_SECOND, send)
        if tasks:
            await asyncio.wait(tasks, timeout=DRAIN_SECONDS)


async def read_ack(reader: asyncio.StreamReader, control_id: str) -> str | None:
    """None for an AA answering `control_id`; `connection_*` when the connection is unusable."""
    try:
        reply = await asyncio.wait_for(reader.readuntil(FS + CR), TIMEOUT_SECONDS)
    except (TimeoutError, OSError, asyncio.IncompleteReadError) as failure:
        return f"connection_{type(failure).__name__}"
    return ack_error(reply, control_id)


async def mllp_connection(port: int, window: Window, seed: int) -> None:
    """Closed loop on one MLLP connection: the next message after the ACK."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payloads = Payloads(seed)
    try:
        while not window.over.is_set():
            control_id, frame = payloads.oru_frame()
            sent = time.perf_counter()
            writer.write(frame)
            error = await read_ack(reader, control_id)
            window.record(sent, time.perf_counter(), 1, error)
            if error and error.startswith("connection_"):
                return  # reported; this connection is done
    finally:
        writer.close()


async def mllp_closed_loop(ingest: Ingest, window: Window) -> None:
    seeds = range(300, 300 + MLLP_CONNECTIONS)
    await asyncio.gather(*(mllp_connection(ingest.mllp_port, window, s) for s in seeds))


async def mllp_paced(ingest: Ingest, window: Window) -> None:
    """500 messages/s spread over the MLLP connections, each with one message in flight at a
    time as MLLP senders work; latency counts from the scheduled time, so falling behind shows."""
    per_connection = OPEN_LOOP_PER_SECOND / MLLP_CONNECTIONS
    total = int((window.options.warmup_seconds + window.options.duration_seconds) * per_connection)

    async def connection(seed: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", ingest.mllp_port)
        payloads, started = Payloads(seed), time.perf_counter()
        try:
            for index in range(total):
                scheduled = started + index / per_connection
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                control_id, frame = payloads.oru_frame()
                writer.write(frame)
                error = await read_ack(reader, control_id)
                window.record(scheduled, time.perf_counter(), 1, error)
                if error and error.startswith("connection_"):
                    return
        finally:
            writer.close()

    seeds = range(200, 200 + MLLP_CONNECTIONS)
    await asyncio.gather(*(connection(seed) for seed in seeds))


SCENARIOS = [
    Scenario(
        "http_batch_100",
        f"POST /v1/events, {BATCH_EVENTS} vital signs each, {HTTP_WORKERS} closed-loop workers",
        http_batches,
        target=Target("events_per_core_second", 20_000, True, ">= 20,000 events/s per core"),
    ),
    Scenario(
        "http_single_paced_500",
        "POST /v1/events, one event each, sent on a timetable at 500/s",
        http_single_paced,
        OPEN_LOOP_PER_SECOND,
        P99_TARGET,
    ),
    Scenario(
        "mllp_oru",
        f"HL7 ORU^R01 over {MLLP_CONNECTIONS} MLLP connections, next message after the ACK",
        mllp_closed_loop,
    ),
    Scenario(
        "mllp_oru_paced_500",
        f"HL7 ORU^R01 at 500/s over {MLLP_CONNECTIONS} MLLP connections, one in flight each",
        mllp_paced,
        OPEN_LOOP_PER_SECOND,
        P99_TARGET,
    ),
]


async def start_ingest(stack: Stack, extra_env: dict[str, str] | None = None) -> Ingest:
    """Ingest with a development API key, HTTP and MLLP on free ports, rate limits out of reach."""
    key, http_port, mllp_port = secrets.token_urlsafe(24), free_port(), free_port()
    env = {
        **(extra_env or {}),
        "WARDFLOW_HTTP_PORT": str(http_port),
        "WARDFLOW_MLLP_PORT": str(mllp_port),
        "WARDFLOW_API_KEYS": json.dumps({"bench": key}),
        "WARDFLOW_PSEUDONYM_KEY": secrets.token_urlsafe(32),
        "WARDFLOW_DEFAULT_RATE_PER_SECOND": "1e9",
        "WARDFLOW_DEFAULT_BURST": "1e9",
    }
    await stack.start_service("ingest", env)
    ingest = Ingest(f"http://127.0.0.1:{http_port}", {"Authorization": f"Bearer {key}"}, mllp_port)
    healthz = f"{ingest.base_url}/healthz"
    await poll_http(healthz, lambda _: True, stack.services["ingest"], 30.0)
    return ingest


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every ingest scenario in turn against one broker and one ingest process."""
    async with running_stack(options.log_dir) as stack:
        ingest = await start_ingest(stack)
        results, acknowledged = await run_scenarios(ingest, SCENARIOS, stack, options)
        stored = len(await topic_event_ids(stack.kafka_url, topic(stack.settings, EVENTS_RAW)))
    checks = {
        "events acknowledged (warm-up included)": acknowledged,
        "distinct events on events.raw": stored,
        "every acknowledged event is on the broker": stored >= acknowledged,
    }
    return results, checks
