"""The scheduler's read API against the real embedded Redis: readers' keys, freshness, open
requests, and the availability stream (over real HTTP, uvicorn) reacting to store changes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from uuid import uuid4

import fastapi.routing
import httpx
import pytest
from redis.asyncio import Redis

from schemas.vocabulary import BedStatus
from services.common.auth import key_digest, readers
from services.common.embedded import free_port
from services.common.hospital import layout_from_dict
from services.common.http import http_server
from services.ingest.sources import SourcesError, sources_from_toml
from services.scheduler.api import create_api
from services.scheduler.store import CareRequest, RedisBedStore

KEY = "board-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
LAYOUT = layout_from_dict(
    {
        "wards": [
            {
                "id": "W1",
                "level_of_care": "general",
                "specialty": "general medicine",
                "site": "north",
                "bays": [{"id": "B1", "sex": "mixed", "beds": 2}],
                "capabilities": {"W1-02": ["isolation", "telemetry"]},
            },
            {"id": "H1", "level_of_care": "hdu", "beds": 1},
            {"id": "I1", "level_of_care": "icu", "beds": 1},
        ]
    }
)
STEP_TIMEOUT = 5.0  # every read of the stream is bounded: a failing test cannot hang


@pytest.fixture
async def store(redis: Redis, unique: str) -> RedisBedStore:
    bed_store = RedisBedStore(redis, f"t{unique}")
    await bed_store.ensure_layout(LAYOUT)
    return bed_store


@pytest.fixture
def closing() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def app(store: RedisBedStore, closing: asyncio.Event) -> Any:
    return create_api(store, LAYOUT, readers("", {"board": KEY}), closing=closing)


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as c:
        yield c


@contextlib.asynccontextmanager
async def serving(app: Any, closing: asyncio.Event) -> AsyncIterator[str]:
    """The app on a real uvicorn server (streams need one); yields its base URL."""
    port = free_port()
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get(f"{base}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the scheduler API did not answer /healthz")
        yield base
    finally:
        closing.set()  # as the service does on stop: open streams end, the server can exit
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Server-sent events as {event, data, comment}, each field joined over its lines."""
    fields: dict[str, list[str]] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield {name: "\n".join(values) for name, values in fields.items()}
            fields = {}
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name or "comment", []).append(value.removeprefix(" "))


async def next_event(events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
    return await asyncio.wait_for(anext(events), STEP_TIMEOUT)


async def redis_now(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return seconds + micros / 1_000_000


async def assert_fresh(body: dict[str, Any], redis: Redis) -> None:
    assert body["source"] == "redis-live-state"
    as_of = datetime.fromisoformat(body["as_of"])
    assert as_of.utcoffset() is not None and as_of.utcoffset().total_seconds() == 0
    assert abs(await redis_now(redis) - as_of.timestamp()) < 5


# --- authentication -------------------------------------------------------------------------

PATHS = ["/v1/wards", "/v1/wards/W1/beds", "/v1/requests", "/v1/availability/stream"]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-key-0123456789"}, {"Authorization": f"Basic {KEY}"}],
    ids=["no-credential", "wrong-key", "not-bearer"],
)
async def test_every_v1_endpoint_wants_a_reader_key(client, path, headers) -> None:
    response = await client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert KEY not in response.text


async def test_healthz_stays_open(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}


async def test_readers_are_entries_with_read_and_every_dev_key() -> None:
    text = f"""
[[sources]]
name = "bed-board"
key_sha256 = "{key_digest("bed-board-key-0123456789")}"
read = true

[[sources]]
name = "bedside-gateway"
key_sha256 = "{key_digest("monitor-key-0123456789")}"
kinds = ["VitalSignsObserved"]
"""
    ring = readers(text, {"dev": "dev-key-0123456789"})
    assert ring.by_key("bed-board-key-0123456789").name == "bed-board"
    assert ring.by_key("dev-key-0123456789").name == "dev"
    assert ring.by_key("monitor-key-0123456789") is None, "a sender is not a reader by default"
    assert ring.by_key("") is None
    # Ingest reads the same file: the reader sends nothing, the gateway is unchanged.
    board, gateway = sources_from_toml(text, default_rate=1.0, default_burst=1.0)
    assert not board.may_send("VitalSignsObserved")
    assert gateway.may_send("VitalSignsObserved")
    with pytest.raises(SourcesError, match=r"sources\[0\]\.kinds: list at least one"):
        sources_from_toml(text.replace("read = true", ""), default_rate=1.0, default_burst=1.0)
    with pytest.raises(SourcesError, match=r"sources\[0\]\.read: must be true or false"):
        readers(text.replace("read = true", 'read = "yes"'), {})


# --- snapshots --------------------------------------------------------------------------------


async def test_wards_and_beds_say_what_and_how_fresh(client, store, redis) -> None:
    assert (await store.allocate("W1", "p1", uuid4(), 0.0)).outcome == "applied"
    body = (await client.get("/v1/wards", headers=AUTH)).json()
    await assert_fresh(body, redis)
    w1 = next(w for w in body["wards"] if w["ward"] == "W1")
    assert w1["total_beds"] == 2 and w1["waiting"] == 0
    assert w1["beds_by_status"]["occupied"] == 1 and w1["beds_by_status"]["available"] == 1
    assert {w["ward"] for w in body["wards"]} == {"W1", "H1", "I1"}
    assert (w1["specialty"], w1["site"]) == ("general medicine", "north")
    h1 = next(w for w in body["wards"] if w["ward"] == "H1")
    assert (h1["specialty"], h1["site"]) == (None, None)

    beds = (await client.get("/v1/wards/W1/beds", headers=AUTH)).json()
    await assert_fresh(beds, redis)
    in_bay = {"bay": "B1", "sex_policy": "mixed"}
    assert beds["beds"] == [
        {
            "bed": "W1-01",
            "status": "occupied",
            "blocked_reason": None,
            **in_bay,
            "capabilities": [],
        },
        {
            "bed": "W1-02",
            "status": "available",
            "blocked_reason": None,
            **in_bay,
            "capabilities": ["isolation", "telemetry"],
        },
    ]
    no_bays = (await client.get("/v1/wards/H1/beds", headers=AUTH)).json()["beds"]
    assert no_bays == [
        {
            "bed": "H1-01",
            "status": "available",
            "blocked_reason": None,
            "bay": None,
            "sex_policy": None,
            "capabilities": [],
        }
    ]
    assert (await client.get("/v1/wards/NOPE/beds", headers=AUTH)).status_code == 404


async def test_requests_list_ward_waits_and_critical_care_oldest_first(
    client, store, redis
) -> None:
    now = await redis_now(redis)
    for patient in ("p1", "p2"):  # W1 is full
        await store.allocate("W1", patient, uuid4(), now - 500)
    # p3's queue score carries an acuity credit of an hour: its wait still runs from `since`.
    profile = json.dumps({"since": now - 120, "band": "medium"})
    waits = await store.allocate(
        "W1", "p3", uuid4(), now - 120, origin="emergency", score=now - 3720, profile=profile
    )
    assert waits.outcome == "waiting"
    reserved = CareRequest(uuid4(), "p4", "icu", now - 300, "W1", "waiting", band="high")
    queued = CareRequest(uuid4(), "p5", "icu", now - 60, "W1", "waiting")
    for req in (reserved, queued):
        await store.reserve("icu", ("I1",), req.request_id, step="request", request=req)

    body = (await client.get("/v1/requests", headers=AUTH)).json()
    await assert_fresh(body, redis)
    assert [r["patient_id"] for r in body["requests"]] == ["p4", "p3", "p5"]  # oldest first
    icu_held, ward_wait, icu_queued = body["requests"]
    held_at = datetime.fromisoformat(icu_held["reserved_at"]).timestamp()
    assert now - 2 <= held_at <= now + 2  # Redis's clock, whole seconds
    expires = datetime.fromisoformat(icu_held["expires_at"]).timestamp()
    assert expires - held_at == 120 * 60  # the default policy's critical-care hold
    assert (ward_wait["reserved_at"], ward_wait["expires_at"]) == (None, None)
    timing = {"waiting_seconds": None, "requested_at": None, "reserved_at": None}
    assert icu_held | timing | {"expires_at": None} == {
        "origin": "critical_care",
        "request_id": str(reserved.request_id),
        "patient_id": "p4",
        "level_of_care": "icu",
        "band": "high",
        "wait_origin": "critical_care",
        "from_ward": "W1",
        "state": "reserved",
        "ward": "I1",
        "bed": "I1-01",
        "position": None,
        "waiting_seconds": None,
        "requested_at": None,
        "reserved_at": None,
        "expires_at": None,
    }
    assert ward_wait["origin"] == "ward_admission" and ward_wait["ward"] == "W1"
    assert (ward_wait["band"], ward_wait["wait_origin"]) == ("medium", "emergency")
    assert icu_queued["band"] is None  # no assessment known
    assert (ward_wait["state"], ward_wait["position"], ward_wait["request_id"]) == (
        "waiting",
        1,
        None,
    )
    assert icu_queued["state"] == "waiting" and icu_queued["position"] == 1
    assert icu_queued["bed"] is None and icu_queued["request_id"] == str(queued.request_id)
    assert 119 <= ward_wait["waiting_seconds"] < 130
    assert 299 <= icu_held["waiting_seconds"] < 310
    assert datetime.fromisoformat(ward_wait["requested_at"]).timestamp() == pytest.approx(
        now - 120, abs=0.01
    )


# --- the availability stream ----------------------------------------------------------------


async def subscribers(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def test_stream_sends_a_snapshot_then_each_change(app, closing, store, redis) -> None:
    async with serving(app, closing) as base:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(STEP_TIMEOUT)) as http,
            http.stream("GET", f"{base}/v1/availability/stream", headers=AUTH) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            snapshot = await next_event(events)
            assert snapshot["event"] == "snapshot"
            wards = json.loads(snapshot["data"])
            await assert_fresh(wards, redis)
            assert {w["ward"]: w["beds_by_status"]["available"] for w in wards["wards"]} == {
                "W1": 2,
                "H1": 1,
                "I1": 1,
            }
            assert await subscribers(redis, store.channel) == 1

            await store.allocate("W1", "p1", uuid4(), 0.0)
            occupied = await next_event(events)
            assert occupied["event"] == "change"
            assert json.loads(occupied["data"])["changes"] == [["W1-01", "available", "occupied"]]

            await store.transition("W1", uuid4(), BedStatus.DIRTY, patient_id="p1")
            freed = json.loads((await next_event(events))["data"])
            assert (freed["ward"], freed["changes"]) == ("W1", [["W1-01", "occupied", "dirty"]])
        # The client went away while the server runs on: its subscription goes with it.
        await _eventually_zero(redis, store.channel)


async def test_stream_heartbeats_and_ends_when_the_server_stops(
    app, closing, store, redis, monkeypatch
) -> None:
    monkeypatch.setattr(fastapi.routing, "_PING_INTERVAL", 0.2)  # 15 s in service
    async with (
        serving(app, closing) as base,
        httpx.AsyncClient(timeout=httpx.Timeout(STEP_TIMEOUT)) as http,
        http.stream("GET", f"{base}/v1/availability/stream", headers=AUTH) as response,
    ):
        events = sse_events(response)
        assert (await next_event(events))["event"] == "snapshot"
        assert await next_event(events) == {"comment": "ping"}
        closing.set()
        with pytest.raises(StopAsyncIteration):  # the stream ends rather than holding the server
            while (await next_event(events)) == {"comment": "ping"}:
                pass
    await _eventually_zero(redis, store.channel)


async def _eventually_zero(redis: Redis, channel: str) -> None:
    for _ in range(100):
        if await subscribers(redis, channel) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the stream's subscription outlived its client")
