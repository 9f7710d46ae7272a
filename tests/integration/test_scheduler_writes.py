"""The scheduler API's writes end to end: HTTP -> scheduling.requests on the real embedded broker
-> the scheduler stage -> Redis and the decision topics. The API never writes Redis itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted
from schemas.beds import (
    BedAssigned,
    BedRequested,
    BedRequestWaiting,
    BedReservationReleased,
    BedReserved,
    BedStatusChanged,
    BedStatusReported,
)
from schemas.topics import (
    BEDS_EVENTS,
    EVENTS_CLEAN,
    PATIENTS_ASSESSMENTS,
    SCHEDULING_DECISIONS,
    SCHEDULING_REQUESTS,
)
from schemas.vocabulary import BedStatus
from services.common.auth import api_clients, key_digest
from services.common.embedded import start_kafka
from services.common.hospital import layout_from_dict
from services.common.kafka import create_topics, make_producer
from services.common.stage import StageRunner
from services.scheduler.api import create_api
from services.scheduler.app import Scheduler
from services.scheduler.commands import Publisher
from services.scheduler.config import SchedulerSettings
from services.scheduler.store import RedisBedStore
from tests.support import RunningStage, collect, eventually, metric_value, publish

MANAGER_KEY = "bed-manager-key-0123456789"  # a development key: may read and write
READER_KEY = "bed-board-key-0123456789"  # read = true only
WRITER_KEY = "writer-only-key-0123456789"  # write = true only
SOURCES = f"""
[[sources]]
name = "bed-board"
key_sha256 = "{key_digest(READER_KEY)}"
read = true

[[sources]]
name = "flow-desk"
key_sha256 = "{key_digest(WRITER_KEY)}"
write = true
"""
MANAGER = {"Authorization": f"Bearer {MANAGER_KEY}"}
READER = {"Authorization": f"Bearer {READER_KEY}"}
WRITER = {"Authorization": f"Bearer {WRITER_KEY}"}
LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "W1", "level_of_care": "general", "beds": 2},
            {"id": "I1", "level_of_care": "icu", "beds": 1},
        ]
    }
)


def pseudonym(n: int) -> str:
    return f"p{n:032x}"


def arrived_envelope() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"occurred_at": now, "recorded_at": now, "source": "ehr"}


def caused_by(event_id: str | UUID) -> Any:
    wanted = str(event_id)
    return lambda events: any(str(getattr(e, "cause_event_id", "")) == wanted for e in events)


@dataclass
class Harness:
    settings: SchedulerSettings
    store: RedisBedStore
    http: httpx.AsyncClient
    kafka_url: str
    producer: Any

    async def read(self, spec: Any, until: Any) -> list[Any]:
        return await collect(self.kafka_url, self.settings, spec, until)

    async def decided(self, event_id: str | UUID) -> list[Any]:
        events = await self.read(SCHEDULING_DECISIONS, caused_by(event_id))
        return [e for e in events if str(e.cause_event_id) == str(event_id)]

    async def publish(self, spec: Any, *events: Any) -> None:
        await publish(self.producer, self.settings, spec, *events)

    async def request(self, **body: Any) -> str:
        response = await self.http.post("/v1/requests", json=body, headers=MANAGER)
        assert response.status_code == 202, response.text
        return str(response.json()["request_id"])


def app_for(store: RedisBedStore, publisher: Publisher | None) -> Any:
    clients = api_clients(SOURCES, {"bed-manager": MANAGER_KEY})
    return create_api(store, LAYOUT, clients, publisher=publisher)


@pytest.fixture
async def harness(
    settings_factory: Any, redis_server: Any, redis: Redis, unique: str, kafka: Any
) -> AsyncIterator[Harness]:
    settings = await settings_factory(
        SchedulerSettings, redis_url=redis_server.url, redis_key_prefix=f"t{unique}"
    )
    store = RedisBedStore(redis, settings.redis_key_prefix)
    await store.ensure_layout(LAYOUT)
    producer = make_producer(settings, linger_ms=0)
    await producer.start()
    runner = StageRunner(
        "scheduler",
        settings,
        [EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS],
        Scheduler(store, LAYOUT),
    )
    app = app_for(store, Publisher(producer, settings, timeout_seconds=5))
    try:
        async with (
            RunningStage(runner),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://scheduler"
            ) as http,
        ):
            yield Harness(settings, store, http, kafka.url, producer)
    finally:
        await producer.stop()


# --- blocked beds and their reason code --------------------------------------------------------


async def test_block_with_a_code_shows_then_unblock_clears_it(harness: Harness) -> None:
    blocked = await harness.http.post(
        "/v1/beds/W1/W1-02/block",
        json={"blocked_reason": "infection", "reason": "C. diff side room"},
        headers=MANAGER,
    )
    assert blocked.status_code == 202, blocked.text
    block_id = blocked.json()["event_id"]
    (change,) = await harness.read(BEDS_EVENTS, caused_by(block_id))
    assert isinstance(change, BedStatusChanged)
    assert (change.bed, change.status, change.blocked_reason) == (
        "W1-02",
        BedStatus.BLOCKED,
        "infection",
    )
    assert await harness.store.blocked_reasons("W1") == {"W1-02": "infection"}
    beds = (await harness.http.get("/v1/wards/W1/beds", headers=READER)).json()["beds"]
    assert [(b["bed"], b["status"], b["blocked_reason"]) for b in beds] == [
        ("W1-01", "available", None),
        ("W1-02", "blocked", "infection"),
    ]
    assert metric_value("wardflow_beds_blocked", ward="W1", reason="infection") == 1
    assert metric_value("wardflow_beds_blocked", ward="W1", reason="maintenance") == 0
    # The event on scheduling.requests says who asked: the key's source, never a person.
    (request,) = await harness.read(SCHEDULING_REQUESTS, lambda e: len(e) >= 1)
    assert isinstance(request, BedStatusReported) and request.source == "bed-manager"

    unblocked = await harness.http.post("/v1/beds/W1/W1-02/unblock", headers=MANAGER)
    assert unblocked.status_code == 202
    unblock_id = unblocked.json()["event_id"]
    changes = await harness.read(BEDS_EVENTS, caused_by(unblock_id))
    (change,) = [c for c in changes if str(c.cause_event_id) == unblock_id]
    assert (change.previous_status, change.status, change.blocked_reason) == (
        BedStatus.BLOCKED,
        BedStatus.CLEANING,  # back into use only through cleaning
        None,
    )
    assert await harness.store.blocked_reasons("W1") == {}
    beds = (await harness.http.get("/v1/wards/W1/beds", headers=MANAGER)).json()["beds"]
    assert beds[1] == {
        "bed": "W1-02",
        "status": "cleaning",
        "blocked_reason": None,
        "bay": None,  # W1 has no bays
        "sex_policy": None,
        "capabilities": [],
    }
    assert metric_value("wardflow_beds_blocked", ward="W1", reason="infection") == 0


async def test_a_block_without_a_code_is_recorded_unspecified(redis: Redis, unique: str) -> None:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    scheduler = Scheduler(store, LAYOUT)
    report = BedStatusReported(
        event_id=uuid4(),
        occurred_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        recorded_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        source="housekeeping",
        ward="W1",
        bed="W1-01",
        status=BedStatus.BLOCKED,
    )
    outputs = await scheduler(EVENTS_CLEAN, report)
    changes = [o.event for o in outputs if isinstance(o.event, BedStatusChanged)]
    assert [c.blocked_reason for c in changes] == ["unspecified"]
    assert await store.blocked_reasons("W1") == {"W1-01": "unspecified"}


# --- bed requests and cancellations -------------------------------------------------------------


async def test_a_ward_request_reserves_a_bed_the_admission_confirms(harness: Harness) -> None:
    first = await harness.request(patient_id=pseudonym(1), ward="W1", reason="from ED")
    (reserved,) = await harness.decided(first)
    assert isinstance(reserved, BedReserved)
    assert (reserved.patient_id, reserved.bed, str(reserved.request_id)) == (
        pseudonym(1),
        "W1-01",
        first,
    )
    assert reserved.level_of_care == "general"
    (event,) = await harness.read(SCHEDULING_REQUESTS, lambda e: len(e) >= 1)
    assert isinstance(event, BedRequested)
    assert (event.origin, event.requested_by) == ("manual", "bed-manager")
    assert str(event.event_id) == first
    assert (await harness.store.statuses("W1"))["W1-01"] == "reserved"
    (listed,) = (await harness.http.get("/v1/requests", headers=MANAGER)).json()["requests"]
    assert (listed["request_id"], listed["state"], listed["ward"], listed["bed"]) == (
        first,
        "reserved",
        "W1",
        "W1-01",
    )
    assert listed["expires_at"] > listed["reserved_at"]

    # The patient arrives: the ADT admission without a bed confirms the reservation.
    arrival = PatientAdmitted(
        event_id=uuid4(), patient_id=pseudonym(1), ward="W1", **arrived_envelope()
    )
    await harness.publish(EVENTS_CLEAN, arrival)
    (assigned,) = await harness.decided(arrival.event_id)
    assert isinstance(assigned, BedAssigned)
    assert (assigned.patient_id, assigned.bed) == (pseudonym(1), "W1-01")
    assert (await harness.store.statuses("W1"))["W1-01"] == "occupied"
    assert (await harness.http.get("/v1/requests", headers=MANAGER)).json()["requests"] == []


async def test_cancelling_ward_requests_frees_their_place_or_bed(harness: Harness) -> None:
    first = await harness.request(patient_id=pseudonym(1), ward="W1")
    second = await harness.request(patient_id=pseudonym(2), ward="W1")
    assert [type(d) for d in await harness.decided(second)] == [BedReserved]
    third = await harness.request(patient_id=pseudonym(3), ward="W1")
    fourth = await harness.request(patient_id=pseudonym(4), ward="W1")
    (waiting,) = await harness.decided(fourth)
    assert isinstance(waiting, BedRequestWaiting) and waiting.patient_id == pseudonym(4)
    listed = (await harness.http.get("/v1/requests", headers=MANAGER)).json()["requests"]
    assert [(r["request_id"], r["state"]) for r in listed] == [
        (first, "reserved"),
        (second, "reserved"),
        (third, "waiting"),
        (fourth, "waiting"),
    ]

    # A waiting request cancelled leaves the queue.
    cancelled = await harness.http.delete(f"/v1/requests/{fourth}", headers=MANAGER)
    assert cancelled.status_code == 202
    assert cancelled.json()["request_id"] == fourth

    async def one_waiting() -> bool:
        return await harness.store.waiting_count("W1") == 1

    await eventually(one_waiting)

    # A reserved one cancelled releases its bed, which the next in line gets reserved.
    cancelled = await harness.http.delete(f"/v1/requests/{first}", headers=MANAGER)
    outcome = await harness.decided(cancelled.json()["event_id"])
    released = next(d for d in outcome if isinstance(d, BedReservationReleased))
    assert (released.patient_id, released.bed, released.reason, released.withdrawal_reason) == (
        pseudonym(1),
        "W1-01",
        "request_withdrawn",
        "cancelled",
    )
    assert released.level_of_care == "general"
    served = next(d for d in outcome if isinstance(d, BedReserved))
    assert (served.patient_id, served.bed, str(served.request_id)) == (pseudonym(3), "W1-01", third)
    assert await harness.store.statuses("W1") == dict.fromkeys(("W1-01", "W1-02"), "reserved")
    assert await harness.store.waiting_count("W1") == 0

    # An unknown id is accepted and changes nothing.
    unknown = await harness.http.delete(f"/v1/requests/{uuid4()}", headers=MANAGER)
    assert unknown.status_code == 202
    marker = await harness.request(patient_id=pseudonym(5), ward="W1")
    assert [type(d) for d in await harness.decided(marker)] == [BedRequestWaiting]
    assert await harness.store.statuses("W1") == dict.fromkeys(("W1-01", "W1-02"), "reserved")


async def test_a_level_request_reserves_and_its_cancellation_serves_the_next(
    harness: Harness,
) -> None:
    # P1 is in W1 (admitted by the EHR): from_ward comes from the live state.
    admitted = PatientAdmitted(
        event_id=uuid4(), patient_id=pseudonym(1), ward="W1", **arrived_envelope()
    )
    await harness.publish(EVENTS_CLEAN, admitted)
    await harness.decided(admitted.event_id)
    first = await harness.request(patient_id=pseudonym(1), level_of_care="icu", band="high")
    (reserved,) = await harness.decided(first)
    assert isinstance(reserved, BedReserved)
    assert (reserved.patient_id, reserved.ward, reserved.bed) == (pseudonym(1), "I1", "I1-01")
    assert str(reserved.request_id) == first

    second = await harness.request(
        patient_id=pseudonym(2), level_of_care="icu", from_ward="W1", band="medium"
    )
    (waiting,) = await harness.decided(second)
    assert isinstance(waiting, BedRequestWaiting)
    assert (waiting.level_of_care, str(waiting.request_id), waiting.ward) == ("icu", second, "W1")

    cancelled = await harness.http.delete(f"/v1/requests/{first}", headers=MANAGER)
    assert cancelled.status_code == 202
    outcome = await harness.decided(cancelled.json()["event_id"])
    released = next(d for d in outcome if isinstance(d, BedReservationReleased))
    assert (released.patient_id, released.bed, released.reason) == (
        pseudonym(1),
        "I1-01",
        "request_withdrawn",
    )
    assert released.withdrawal_reason == "cancelled"
    served = next(d for d in outcome if isinstance(d, BedReserved))
    assert (served.patient_id, str(served.request_id)) == (pseudonym(2), second)


async def test_a_level_request_for_a_patient_without_a_bed_needs_from_ward(
    harness: Harness,
) -> None:
    response = await harness.http.post(
        "/v1/requests", json={"patient_id": pseudonym(9), "level_of_care": "hdu"}, headers=MANAGER
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["from_ward"]


# --- permissions, validation ------------------------------------------------------------------

WRITES = [
    ("POST", "/v1/requests", {"patient_id": pseudonym(1), "ward": "W1"}),
    ("DELETE", f"/v1/requests/{uuid4()}", None),
    ("POST", "/v1/beds/W1/W1-01/block", {"blocked_reason": "staffing"}),
    ("POST", "/v1/beds/W1/W1-01/unblock", None),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_writes_want_a_key_with_write(redis: Redis, unique: str, method, path, body) -> None:
    store = RedisBedStore(redis, f"t{unique}", layout=LAYOUT)
    app = app_for(store, Publisher(None, SchedulerSettings(), 1))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
        anonymous = await http.request(method, path, json=body)
        reader = await http.request(method, path, json=body, headers=READER)
        writer_reads = await http.get("/v1/wards", headers=WRITER)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert reader.status_code == 403, "a reader without write = true may not write"
    assert writer_reads.status_code == 403, "a writer without read = true may not read"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fields"),
    [
        ("POST", "/v1/requests", {"patient_id": pseudonym(1), "ward": "W1", "band": "dire"}, 422,
         ["band"]),
        ("POST", "/v1/requests", {"patient_id": "MRN-0042", "ward": "W1"}, 422, ["patient_id"]),
        ("POST", "/v1/requests", {"patient_id": pseudonym(1), "ward": "W1",
                                  "level_of_care": "icu"}, 422, ["ward"]),
        ("POST", "/v1/requests", {"patient_id": pseudonym(1)}, 422, ["ward"]),
        ("POST", "/v1/requests", {"patient_id": pseudonym(1), "level_of_care": "ward"}, 422,
         ["level_of_care"]),
        ("POST", "/v1/requests", {"patient_id": pseudonym(1), "ward": "NOPE"}, 404, None),
        ("DELETE", "/v1/requests/not-a-uuid", None, 422, ["request_id"]),
        ("POST", "/v1/beds/W1/W1-01/block", {}, 422, ["blocked_reason"]),
        ("POST", "/v1/beds/W1/W1-01/block", {"blocked_reason": "because"}, 422,
         ["blocked_reason"]),
        ("POST", "/v1/beds/NOPE/W1-01/block", {"blocked_reason": "other"}, 404, None),
        ("POST", "/v1/beds/W1/W1-99/unblock", None, 404, None),
    ],
)  # fmt: skip
async def test_bad_writes_are_refused_naming_the_field(
    redis: Redis, unique: str, method, path, body, status, fields
) -> None:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    app = app_for(store, Publisher(None, SchedulerSettings(), 1))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
        response = await http.request(method, path, json=body, headers=MANAGER)
    assert response.status_code == status, response.text
    if fields is not None:
        assert response.json()["reason"] == "invalid_request"
        assert [e["field"] for e in response.json()["errors"]] == fields
    assert "MRN-0042" not in response.text, "errors name fields, never values"


async def test_answers_503_with_retry_after_when_the_broker_is_down(
    settings_factory: Any, redis: Redis, unique: str, tmp_path: Path
) -> None:
    broker = await start_kafka(tmp_path / "logs")
    try:
        settings = await settings_factory(SchedulerSettings, kafka_bootstrap_servers=broker.url)
        await create_topics(settings, partitions=1)
        producer = make_producer(settings, linger_ms=0)
        await producer.start()
        store = RedisBedStore(redis, f"t{unique}")
        await store.ensure_layout(LAYOUT)
        app = app_for(store, Publisher(producer, settings, timeout_seconds=2))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://s") as http:
                body = {"blocked_reason": "maintenance"}
                before = await http.post("/v1/beds/W1/W1-01/block", json=body, headers=MANAGER)
                broker.stop()
                after = await http.post("/v1/beds/W1/W1-01/block", json=body, headers=MANAGER)
        finally:
            await producer.stop()
    finally:
        broker.stop()
    assert before.status_code == 202
    assert after.status_code == 503
    assert after.headers["Retry-After"] == "5"
    assert after.json()["reason"] == "broker_unavailable"
    assert await store.blocked_reasons("W1") == {}, "the API never writes Redis itself"
