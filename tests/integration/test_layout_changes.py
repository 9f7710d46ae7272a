"""The hospital layout changed by events while the scheduler runs, on the real embedded broker and
Redis: PUT /v1/wards/{ward}/layout -> hospital.layout -> the running scheduler's layout, its beds
in Redis, beds.state and beds.availability; a scheduler started later (same Redis, or a wiped one
rebuilt) has the change from the topic. A change that would take away a bed in use is refused
with 409 and nothing is published; a free bed that leaves is gone from Redis and the API."""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError
from redis.asyncio import Redis

from schemas.beds import (
    BedAssigned,
    BedReserved,
    BedStateSnapshot,
    BedStatusChanged,
    WardAvailabilityUpdated,
)
from schemas.layout import WardLayoutSet
from schemas.topics import (
    BEDS_AVAILABILITY,
    BEDS_STATE,
    EVENTS_CLEAN,
    SCHEDULING_DECISIONS,
)
from schemas.vocabulary import BedStatus, LevelOfCare
from services.common.auth import api_clients, key_digest
from services.common.embedded import free_port
from services.common.hospital import layout_from_dict, load_layout
from services.scheduler import service
from services.scheduler.api import create_api
from services.scheduler.app import Scheduler
from services.scheduler.commands import Publisher
from services.scheduler.config import SchedulerSettings
from services.scheduler.domain import wards_at_level
from services.scheduler.follower import LayoutFeed, LayoutFollower, current_layout
from services.scheduler.layout_file import publish_file
from services.scheduler.rebuild import rebuild
from services.scheduler.store import CareRequest, RedisBedStore
from tests.integration.test_scheduler_stage import admitted, discharged, reported
from tests.integration.test_state_rebuild import dump, wipe
from tests.support import collect, eventually, metric_value, publish

MANAGER_KEY = "bed-manager-key-0123456789"  # a development key: may read and write
READER_KEY = "bed-board-key-0123456789"  # read = true only
MANAGER = {"Authorization": f"Bearer {MANAGER_KEY}"}
READER = {"Authorization": f"Bearer {READER_KEY}"}
SOURCES = f"""
[[sources]]
name = "bed-board"
key_sha256 = "{key_digest(READER_KEY)}"
read = true
"""
LAYOUT_TOML = """
version = "layout-test"
[[wards]]
id = "W1"
name = "Medical ward 1"
level_of_care = "general"
[[wards.bays]]
id = "M"
sex = "male"
beds = 2
[[wards]]
id = "H1"
level_of_care = "hdu"
beds = 1
"""
LAYOUT = layout_from_dict(tomllib.loads(LAYOUT_TOML))
MALE_BAY = {"id": "M", "sex": "male", "beds": 2}
W1_WITH_SIDE_ROOM = {
    "id": "W1",
    "name": "Medical ward 1",
    "level_of_care": "general",
    "bays": [MALE_BAY, {"id": "SR", "sex": "mixed", "beds": ["W1-SR1"]}],
    "capabilities": {"W1-SR1": ["isolation"]},
    "reason": "reconfiguration",
}
NEW_WARD = {
    "id": "W9",
    "name": "Escalation ward",
    "level_of_care": "general",
    "specialty": "general medicine",
    "site": "annexe",
    "beds": 2,
    "reason": "new_ward",
}


@dataclass
class Hospital:
    settings: SchedulerSettings
    store: RedisBedStore
    layout_file: Path
    kafka_url: str

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[httpx.AsyncClient]:
        """The scheduler service (stage, API, layout follower) as it runs in production."""
        settings = self.settings.model_copy(update={"http_port": free_port()})
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(settings, stop))
        base = f"http://127.0.0.1:{settings.http_port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:

                async def answers() -> bool:
                    if task.done():
                        task.result()  # the service failed: say why
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get("/healthz")).status_code == 200
                    return False

                await eventually(answers, timeout_seconds=60)
                yield http
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)

    async def changes_on_topic(self) -> list[WardLayoutSet]:
        """hospital.layout read to its end (what a scheduler starting now would fold)."""
        feed = LayoutFeed(self.settings)
        await feed.start()
        try:
            return await feed.read_to_end(timeout_seconds=30)
        finally:
            await feed.stop()

    async def decided(self, cause: Any) -> list[Any]:
        events = await collect(
            self.kafka_url,
            self.settings,
            SCHEDULING_DECISIONS,
            lambda events: any(getattr(e, "cause_event_id", None) == cause for e in events),
        )
        return [e for e in events if getattr(e, "cause_event_id", None) == cause]


@pytest.fixture
async def hospital(
    settings_factory: Any, redis_server: Any, redis: Redis, unique: str, kafka: Any, tmp_path: Path
) -> Hospital:
    layout_file = tmp_path / "hospital.toml"
    layout_file.write_text(LAYOUT_TOML)
    sources = tmp_path / "sources.toml"
    sources.write_text(SOURCES)
    settings = await settings_factory(
        SchedulerSettings,
        redis_url=redis_server.url,
        redis_key_prefix=f"t{unique}",
        hospital_layout=str(layout_file),
        consumer_group=f"g{unique}-scheduler",
        api_keys={"bed-manager": MANAGER_KEY},
        sources_file=str(sources),
    )
    return Hospital(
        settings,
        RedisBedStore(redis, settings.redis_key_prefix, layout=LAYOUT),
        layout_file,
        kafka.url,
    )


async def beds_of(http: httpx.AsyncClient, ward: str) -> dict[str, dict[str, Any]]:
    response = await http.get(f"/v1/wards/{ward}/beds", headers=READER)
    if response.status_code == 404:
        return {}
    return {bed["bed"]: bed for bed in response.json()["beds"]}


async def test_a_new_ward_and_a_new_side_room_are_used_at_once_and_after_a_restart(
    hospital: Hospital, producer: Any, kafka: Any
) -> None:
    applied = metric_value("wardflow_layout_changes_total", outcome="applied")
    async with hospital.running() as http:
        side_room = await http.put("/v1/wards/W1/layout", json=W1_WITH_SIDE_ROOM, headers=MANAGER)
        assert side_room.status_code == 202, side_room.text
        assert side_room.json()["added"] == ["W1-SR1"] and side_room.json()["removed"] == []
        new_ward = await http.put("/v1/wards/W9/layout", json=NEW_WARD, headers=MANAGER)
        assert new_ward.status_code == 202, new_ward.text
        assert new_ward.json()["beds"] == ["W9-01", "W9-02"]

        async def both_applied() -> bool:
            return "W1-SR1" in await beds_of(http, "W1") and len(await beds_of(http, "W9")) == 2

        await eventually(both_applied)
        assert (await beds_of(http, "W1"))["W1-SR1"] == {
            "bed": "W1-SR1",
            "status": "available",
            "blocked_reason": None,
            "bay": "SR",
            "sex_policy": "mixed",
            "capabilities": ["isolation"],
        }
        wards = {
            w["ward"]: w for w in (await http.get("/v1/wards", headers=READER)).json()["wards"]
        }
        assert (wards["W1"]["total_beds"], wards["W9"]["total_beds"]) == (3, 2)
        assert (wards["W9"]["name"], wards["W9"]["site"]) == ("Escalation ward", "annexe")
        assert metric_value("wardflow_layout_changes_total", outcome="applied") == applied + 2

        # A woman who needs isolation: the male bay will not do, the new side room will.
        isolation = admitted("P-ISO", "W1", needs=["isolation"], sex="female")
        await publish(producer, hospital.settings, EVENTS_CLEAN, isolation)
        (assigned,) = [
            e for e in await hospital.decided(isolation.event_id) if isinstance(e, BedAssigned)
        ]
        assert isinstance(assigned, BedAssigned) and assigned.bed == "W1-SR1"
        # The new ward takes patients at once.
        elsewhere = admitted("P-W9", "W9")
        await publish(producer, hospital.settings, EVENTS_CLEAN, elsewhere)
        (assigned,) = await hospital.decided(elsewhere.event_id)
        assert (assigned.ward, assigned.bed) == ("W9", "W9-01")

    # The change is on Kafka: the new ward's snapshot and availability, and the events.
    availability = await collect(
        kafka.url,
        hospital.settings,
        BEDS_AVAILABILITY,
        lambda events: any(e.ward == "W9" for e in events),
    )
    (w9,) = [e for e in availability if e.ward == "W9"][:1]
    assert isinstance(w9, WardAvailabilityUpdated) and w9.total_beds == 2
    snapshots = await collect(
        kafka.url, hospital.settings, BEDS_STATE, lambda es: any(e.scope == "ward:W9" for e in es)
    )
    assert isinstance(snapshots[-1], BedStateSnapshot)
    changes = await hospital.changes_on_topic()
    assert [(c.ward.id, c.changed_by, c.reason) for c in changes] == [
        ("W1", "bed-manager", "reconfiguration"),
        ("W9", "bed-manager", "new_ward"),
    ]

    # A scheduler started afterwards on the same Redis has the change from the topic.
    async with hospital.running() as http:
        w1 = await beds_of(http, "W1")
        assert (w1["W1-SR1"]["status"], w1["W1-SR1"]["capabilities"]) == ("occupied", ["isolation"])
        assert list(await beds_of(http, "W9")) == ["W9-01", "W9-02"]

    # Redis wiped, then rebuilt with the same folded layout: a fresh scheduler carries on.
    before = await dump(hospital.store.redis, hospital.settings.redis_key_prefix)
    await wipe(hospital.store.redis, hospital.settings.redis_key_prefix)
    layout = await current_layout(hospital.settings, load_layout(str(hospital.layout_file)))
    assert layout.ward("W9") is not None and "W1-SR1" in layout.ward("W1").beds  # type: ignore[union-attr]
    report = await rebuild(hospital.settings, hospital.store, layout=layout, timeout_seconds=30)
    assert {"ward:W1", "ward:W9"} <= set(report.restored)
    assert report.outside_layout == [] and report.not_on_kafka == []
    assert await dump(hospital.store.redis, hospital.settings.redis_key_prefix) == before
    scheduler = Scheduler(hospital.store, layout)
    outputs = await scheduler(EVENTS_CLEAN, admitted("P-NEXT", "W9"))
    assert [(o.event.ward, o.event.bed) for o in outputs if isinstance(o.event, BedAssigned)] == [
        ("W9", "W9-02")
    ]


async def test_a_bed_in_use_cannot_leave_and_a_free_one_does(
    hospital: Hospital, producer: Any, tmp_path: Path
) -> None:
    async with hospital.running() as http:
        patient = admitted("P1", "W1", sex="male")
        await publish(producer, hospital.settings, EVENTS_CLEAN, patient)
        (assigned,) = [
            e for e in await hospital.decided(patient.event_id) if isinstance(e, BedAssigned)
        ]
        assert assigned.bed == "W1-01"

        one_bed = {"id": "W1", "level_of_care": "general", "bays": [{**MALE_BAY, "beds": 1}]}
        other_bed = {**one_bed, "bays": [{**MALE_BAY, "beds": ["W1-02"]}]}
        refused = await http.put("/v1/wards/W1/layout", json=other_bed, headers=MANAGER)
        assert refused.status_code == 409
        assert (refused.json()["reason"], refused.json()["beds"]) == ("beds_in_use", ["W1-01"])
        to_hdu = {**one_bed, "level_of_care": "hdu"}
        refused = await http.put("/v1/wards/W1/layout", json=to_hdu, headers=MANAGER)
        assert refused.status_code == 409
        assert refused.json()["reason"] == "level_of_care_in_use"
        assert refused.json()["beds"] == ["W1-01"]
        assert await hospital.changes_on_topic() == [], "nothing was published"

        # The same through the file command: nothing is published either.
        edited = tmp_path / "edited.toml"
        edited.write_text(LAYOUT_TOML.replace("beds = 2", 'beds = ["W1-02"]'))
        report = await publish_file(hospital.settings, str(edited), [], "estates")
        assert (list(report.refused), report.refused["W1"].beds) == (["W1"], ("W1-01",))
        assert (report.unchanged, report.published) == (["H1"], [])
        assert await hospital.changes_on_topic() == []

        # W1-02 is free: it may leave.
        accepted = await http.put("/v1/wards/W1/layout", json=one_bed, headers=MANAGER)
        assert accepted.status_code == 202, accepted.text
        assert (accepted.json()["removed"], accepted.json()["added"]) == (["W1-02"], [])

        async def gone() -> bool:
            return list(await beds_of(http, "W1")) == ["W1-01"]

        await eventually(gone)
        assert await hospital.store.statuses("W1") == {"W1-01": BedStatus.OCCUPIED}
        prefix = f"{hospital.settings.redis_key_prefix}:{{ward:W1}}"
        assert await hospital.store.redis.hgetall(f"{prefix}:order") == {"W1-01": "1"}
        assert await hospital.store.redis.zrange(f"{prefix}:available", 0, -1) == []
        wards = (await http.get("/v1/wards", headers=READER)).json()["wards"]
        assert next(w for w in wards if w["ward"] == "W1")["total_beds"] == 1

        # The file command publishes only the wards it is asked for, when they changed.
        bigger = tmp_path / "bigger.toml"
        bigger.write_text(LAYOUT_TOML.replace("beds = 1", "beds = 2"))
        report = await publish_file(hospital.settings, str(bigger), ["H1"], "estates", "capacity")
        assert (report.published, report.refused) == (["H1"], {})

        async def two_hdu_beds() -> bool:
            return list(await beds_of(http, "H1")) == ["H1-01", "H1-02"]

        await eventually(two_hdu_beds)
    changes = await hospital.changes_on_topic()
    assert [(c.ward.id, c.source, c.changed_by) for c in changes] == [
        ("W1", "bed-manager", "bed-manager"),
        ("H1", "layout-file", "estates"),
    ]


async def test_a_bed_taken_after_the_check_stays_until_it_is_free(
    redis: Redis, unique: str
) -> None:
    """The API checked; a patient took the bed before the change was applied: the change is
    applied, the bed stays (counted, and tried again), and leaves once it is free."""
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    scheduler = Scheduler(store, LAYOUT)
    follower = LayoutFollower(scheduler, None, None, SchedulerSettings())  # type: ignore[arg-type]
    await scheduler(EVENTS_CLEAN, admitted("P1", "W1", sex="male"))  # W1-01
    await scheduler(EVENTS_CLEAN, admitted("P2", "W1", sex="male"))  # W1-02
    kept = metric_value("wardflow_layout_changes_total", outcome="beds_kept")
    change = WardLayoutSet(
        event_id=uuid4(),
        occurred_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        recorded_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        source="bed-manager",
        ward={"id": "W1", "level_of_care": "general", "bays": [{**MALE_BAY, "beds": 1}]},  # type: ignore[arg-type]
        changed_by="bed-manager",
    )
    outputs = await follower.apply(change)
    assert metric_value("wardflow_layout_changes_total", outcome="beds_kept") == kept + 1
    assert await store.statuses("W1") == {"W1-01": "occupied", "W1-02": "occupied"}
    assert scheduler.layout.ward("W1").beds == ("W1-01",)  # type: ignore[union-attr]
    assert follower.leaving == {"W1": ("W1-02",)}
    (snapshot,) = [o.event for o in outputs if isinstance(o.event, BedStateSnapshot)]
    assert snapshot.scope == "ward:W1"
    assert await follower.retry() == [], "still occupied: nothing changes"

    await scheduler(EVENTS_CLEAN, discharged("P2"))
    for status in (BedStatus.CLEANING, BedStatus.AVAILABLE):
        await scheduler(EVENTS_CLEAN, reported("W1-02", status))
    outputs = await follower.retry()
    assert await store.statuses("W1") == {"W1-01": "occupied"}
    assert follower.leaving == {}
    (availability,) = [o.event for o in outputs if isinstance(o.event, WardAvailabilityUpdated)]
    assert availability.total_beds == 1
    assert not [o for o in outputs if isinstance(o.event, BedStatusChanged)]


# --- the write's checks: permission, the body, the broker -----------------------------------


def app_for(store: RedisBedStore, publisher: Publisher) -> Any:
    clients = api_clients(SOURCES, {"bed-manager": MANAGER_KEY})
    return create_api(store, lambda: LAYOUT, clients, publisher=publisher)


GOOD = {"id": "W1", "level_of_care": "general", "beds": 2}


@pytest.mark.parametrize(
    ("path", "body", "fields"),
    [
        ("/v1/wards/W2/layout", GOOD, ["id"]),
        ("/v1/wards/W1/layout", {**GOOD, "beds": None, "bays": [{**MALE_BAY, "sex": "men"}]},
         ["bays[0].sex"]),
        ("/v1/wards/W1/layout", {**GOOD, "beds": ["W1-01", "W1-01"]}, ["beds"]),
        ("/v1/wards/W1/layout", {**GOOD, "capabilities": {"W1-09": ["isolation"]}},
         ["capabilities.W1-09"]),
        ("/v1/wards/W1/layout", {**GOOD, "level_of_care": "palliative"}, ["level_of_care"]),
        ("/v1/wards/W1/layout", {**GOOD, "beds": "two"}, ["beds"]),
        ("/v1/wards/W1/layout", {**GOOD, "rooms": 2}, ["rooms"]),
        ("/v1/wards/W1/layout", {**GOOD, "reason": "because"}, ["reason"]),
    ],
    ids=[
        "path and body ward differ",
        "bad sex policy",
        "duplicate bed",
        "capability on an unknown bed",
        "unknown level of care",
        "beds neither a count nor names",
        "unknown field",
        "reason not a code",
    ],
)  # fmt: skip
async def test_a_bad_layout_is_refused_naming_the_field(
    redis: Redis, unique: str, path: str, body: dict[str, Any], fields: list[str]
) -> None:
    body = {key: value for key, value in body.items() if value is not None}
    store = RedisBedStore(redis, f"t{unique}")
    app = app_for(store, Publisher(None, SchedulerSettings(), 1))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
        response = await http.put(path, json=body, headers=MANAGER)
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "invalid_request"
    assert [e["field"] for e in response.json()["errors"]] == fields


class DownProducer:
    """A producer whose broker never acknowledges (as when it is down)."""

    async def send_and_wait(self, *args: Any, **kwargs: Any) -> None:
        raise KafkaConnectionError()


async def test_a_layout_write_wants_a_writer_and_the_broker(redis: Redis, unique: str) -> None:
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    app = app_for(store, Publisher(DownProducer(), SchedulerSettings(), 1))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://scheduler") as http:
        anonymous = await http.put("/v1/wards/W1/layout", json=GOOD)
        reader = await http.put("/v1/wards/W1/layout", json=GOOD, headers=READER)
        broker_down = await http.put("/v1/wards/W1/layout", json=GOOD, headers=MANAGER)
    assert anonymous.status_code == 401
    assert reader.status_code == 403, "a key without write = true may not change the layout"
    assert broker_down.status_code == 503
    assert broker_down.headers["Retry-After"] == "5"
    assert await store.statuses("W1") == dict.fromkeys(("W1-01", "W1-02"), "available")


async def test_a_ward_that_becomes_hdu_takes_its_beds_state_to_the_level(
    redis: Redis, unique: str
) -> None:
    """General -> HDU changes the ward's hash tag (its level's, for Redis Cluster): the state of
    its beds moves to the new key names, the old ones are gone, and the ward now serves the
    HDU queue."""
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    scheduler = Scheduler(store, LAYOUT)
    follower = LayoutFollower(scheduler, None, None, SchedulerSettings())  # type: ignore[arg-type]
    await scheduler(EVENTS_CLEAN, admitted("P1", "W1", sex="male"))  # W1-01
    await scheduler(EVENTS_CLEAN, discharged("P1"))  # W1-01 dirty
    await scheduler(EVENTS_CLEAN, reported("W1-02", BedStatus.BLOCKED))
    old_status_key = store.keys.ward("W1", "status")
    change = WardLayoutSet(
        event_id=uuid4(),
        occurred_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        recorded_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
        source="bed-manager",
        ward={"id": "W1", "level_of_care": "hdu", "beds": ["W1-01", "W1-02"]},  # type: ignore[arg-type]
        changed_by="bed-manager",
    )
    await follower.apply(change)
    assert store.keys.ward("W1", "status").startswith(f"t{unique}:{{level:hdu}}")
    assert not await redis.exists(old_status_key)
    assert await store.statuses("W1") == {"W1-01": "dirty", "W1-02": "blocked"}
    assert await store.blocked_reasons("W1") == {"W1-02": "unspecified"}

    # The HDU level is now H1 and W1: H1's bed is reserved, the next request waits, and W1's
    # bed, once cleaned, serves it.
    wards = wards_at_level(scheduler.layout, LevelOfCare.HDU)
    assert wards == ("H1", "W1")
    for patient in ("Q1", "Q2"):
        request = CareRequest(uuid4(), patient, "hdu", 1.0, "W1", "waiting")
        await store.reserve("hdu", wards, request.request_id, step="r", request=request)
    assert await store.critical_care_waiting("hdu") == 1
    await scheduler(EVENTS_CLEAN, reported("W1-01", BedStatus.CLEANING))
    outputs = await scheduler(EVENTS_CLEAN, reported("W1-01", BedStatus.AVAILABLE))
    (reserved,) = [o.event for o in outputs if isinstance(o.event, BedReserved)]
    assert (reserved.patient_id, reserved.ward, reserved.bed) == ("Q2", "W1", "W1-01")


async def test_new_beds_serve_the_patients_waiting_and_the_level_queue(
    redis: Redis, unique: str
) -> None:
    """A bed added by a layout change goes at once to the first waiting patient it fits; a new
    HDU bed serves the HDU queue."""
    store = RedisBedStore(redis, f"t{unique}")
    await store.ensure_layout(LAYOUT)
    scheduler = Scheduler(store, LAYOUT)
    follower = LayoutFollower(scheduler, None, None, SchedulerSettings())  # type: ignore[arg-type]
    for patient in ("P1", "P2", "P3"):  # two beds in the male bay: P3 waits
        await scheduler(EVENTS_CLEAN, admitted(patient, "W1", sex="male"))
    for patient in ("Q1", "Q2"):  # one HDU bed: Q2 queues
        request = CareRequest(uuid4(), patient, "hdu", 1.0, "W1", "waiting")
        await store.reserve("hdu", ("H1",), request.request_id, step="r", request=request)
    assert await store.critical_care_waiting("hdu") == 1

    def change(ward: dict[str, Any]) -> WardLayoutSet:
        return WardLayoutSet(
            event_id=uuid4(),
            occurred_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
            recorded_at="2026-01-01T00:00:00Z",  # type: ignore[arg-type]
            source="bed-manager",
            ward=ward,  # type: ignore[arg-type]
            changed_by="bed-manager",
        )

    grown = {"id": "W1", "level_of_care": "general", "bays": [{**MALE_BAY, "beds": 3}]}
    outputs = await follower.apply(change(grown))
    (assigned,) = [o.event for o in outputs if isinstance(o.event, BedAssigned)]
    assert (assigned.patient_id, assigned.ward, assigned.bed) == ("P3", "W1", "W1-03")
    assert await store.statuses("W1") == {b: "occupied" for b in ("W1-01", "W1-02", "W1-03")}
    assert await store.waiting_count("W1") == 0

    outputs = await follower.apply(change({"id": "H1", "level_of_care": "hdu", "beds": 2}))
    (reserved,) = [o.event for o in outputs if isinstance(o.event, BedReserved)]
    assert (reserved.patient_id, reserved.bed) == ("Q2", "H1-02")
    assert await store.critical_care_waiting("hdu") == 0
    scopes = {o.event.scope for o in outputs if isinstance(o.event, BedStateSnapshot)}
    assert scopes == {"ward:H1", "level:hdu"}
