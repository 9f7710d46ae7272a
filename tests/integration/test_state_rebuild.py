"""Kafka is the source of truth: Redis wiped, then rebuilt from beds.state, gives back exactly the
same beds, reservations and queues; and a scheduler restarted on an empty Redis restores them
itself before it does anything else. Real embedded broker and Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from redis.asyncio import Redis

from schemas.beds import BedAssigned, BedRequested, BedRequestWaiting, BedReserved
from schemas.topics import (
    EVENTS_CLEAN,
    PATIENTS_ASSESSMENTS,
    SCHEDULING_DECISIONS,
    SCHEDULING_REQUESTS,
)
from schemas.vocabulary import BedStatus
from services.common.embedded import free_port
from services.common.hospital import layout_from_dict
from services.common.stage import StageRunner
from services.scheduler import service
from services.scheduler.app import Scheduler
from services.scheduler.config import SchedulerSettings
from services.scheduler.rebuild import rebuild
from services.scheduler.store import RedisBedStore
from tests.integration.test_scheduler_stage import (
    admitted,
    bed_requested,
    discharged,
    reported,
)
from tests.support import RunningStage, collect, eventually, publish


def ward_request(patient: str, ward: str) -> BedRequested:
    now = datetime.now(UTC)
    return BedRequested(
        event_id=uuid4(),
        patient_id=patient,
        ward=ward,
        requested_by="bed-office",
        occurred_at=now,
        recorded_at=now,
        source="scheduler-api",
    )


LAYOUT_TOML = """
version = "rebuild-test"
[[wards]]
id = "W1"
level_of_care = "general"
beds = 2
[wards.capabilities]
"W1-01" = ["isolation"]
[[wards]]
id = "W2"
level_of_care = "general"
beds = 1
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
"""


async def dump(redis: Redis, prefix: str) -> dict[str, Any]:
    """Every key of the deployment but the idempotency records, with its full contents."""
    contents: dict[str, Any] = {}
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        if ":seen:" in key:
            continue
        kind = await redis.type(key)
        if kind == "hash":
            contents[key] = await redis.hgetall(key)
        elif kind == "zset":
            contents[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            contents[key] = (kind, await redis.dump(key))
    return contents


async def wipe(redis: Redis, prefix: str) -> None:
    """FLUSHALL, for this test's keys only (the embedded Redis is shared by the session)."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)


async def test_a_wiped_redis_is_rebuilt_exactly_from_kafka(
    settings_factory: Any, redis_server: Any, unique: str, producer: Any, kafka: Any, tmp_path: Path
) -> None:
    layout_file = tmp_path / "layout.toml"
    layout_file.write_text(LAYOUT_TOML)
    layout = layout_from_dict(__import__("tomllib").loads(LAYOUT_TOML))
    settings = await settings_factory(
        SchedulerSettings,
        redis_url=redis_server.url,
        redis_key_prefix=f"t{unique}",
        hospital_layout=str(layout_file),
    )
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    store = RedisBedStore(redis, settings.redis_key_prefix)
    await store.ensure_layout(layout)

    def stage() -> StageRunner:
        scheduler = Scheduler(store, layout)
        return StageRunner(
            "scheduler",
            settings,
            [EVENTS_CLEAN, PATIENTS_ASSESSMENTS, SCHEDULING_REQUESTS],
            scheduler,
            prepare=scheduler.initial_snapshots,
            before_commit=scheduler.touched_snapshots,
        )

    icu, hdu, queued = bed_requested("P2", "icu"), bed_requested("P4", "hdu"), None

    async def decided(predicate: Any) -> list[Any]:
        return await collect(kafka.url, settings, SCHEDULING_DECISIONS, predicate)

    def assigned_to(*patients: str) -> Any:
        return lambda events: (
            {e.patient_id for e in events if isinstance(e, BedAssigned)} >= set(patients)
        )

    async with RunningStage(stage()):
        # W1: P1 and P2 take both beds, then P3, who needs isolation (only W1-01 has it), waits
        # with their eligible beds remembered; P1 leaves and the bed goes to cleaning.
        # (Patients are keyed to different partitions: each step waits for the one before.)
        await publish(producer, settings, EVENTS_CLEAN, admitted("P1"), admitted("P2"))
        await decided(assigned_to("P1", "P2"))
        await publish(producer, settings, EVENTS_CLEAN, admitted("P3", needs=["isolation"]))
        await decided(lambda events: any(isinstance(e, BedRequestWaiting) for e in events))
        await publish(producer, settings, EVENTS_CLEAN, discharged("P1"))
        beds = await store.statuses("W1")
        first_bed = next(iter(sorted(beds)))
        await eventually(lambda: _status(store, "W1", first_bed, BedStatus.DIRTY))
        await publish(producer, settings, EVENTS_CLEAN, reported(first_bed, BedStatus.CLEANING))
        # W2's only bed is blocked with a reason code (kept in the ward's blocked_reason hash).
        block = reported("W2-01", BedStatus.BLOCKED, "W2").model_copy(
            update={"blocked_reason": "maintenance"}
        )
        await publish(producer, settings, EVENTS_CLEAN, block)
        await eventually(lambda: _status(store, "W2", "W2-01", BedStatus.BLOCKED))
        # Critical care: P2 gets the ICU bed, P4 the HDU bed, then P5 queues for HDU.
        queued = bed_requested("P5", "hdu")
        await publish(producer, settings, PATIENTS_ASSESSMENTS, icu, hdu)
        await decided(lambda events: sum(isinstance(e, BedReserved) for e in events) == 2)
        await publish(producer, settings, PATIENTS_ASSESSMENTS, queued)
        await decided(
            lambda events: any(getattr(e, "request_id", None) == queued.event_id for e in events)
        )

        # W3: a bed manager's request holds its one bed for P6 (until the ADT confirms it or the
        # hold expires); P7's request waits behind it.
        held, behind = ward_request("P6", "W3"), ward_request("P7", "W3")
        await publish(producer, settings, SCHEDULING_REQUESTS, held)
        await decided(lambda events: any(e.cause_event_id == held.event_id for e in events))
        await publish(producer, settings, SCHEDULING_REQUESTS, behind)
        await decided(lambda events: any(e.cause_event_id == behind.event_id for e in events))

        async def kafka_matches_redis() -> bool:
            report = await rebuild(settings, store, check_only=True, timeout_seconds=30)
            return not report.differing

        await eventually(kafka_matches_redis)

    before = await dump(redis, settings.redis_key_prefix)
    keys = store.keys
    assert before[keys.ward("W1", "waiting")][0][0] == "P3"
    assert before[keys.ward("W1", "waiting_eligible")] == {"P3": "W1-01"}
    assert before[keys.level("hdu", "queue")][0][0] == str(queued.event_id)
    assert before[keys.ward("W2", "blocked_reason")] == {"W2-01": "maintenance"}
    assert before[keys.ward("H1", "reservation")], "H1's bed is reserved for P4"
    assert '"kind":"ward"' in before[keys.ward("W3", "reservation")]["W3-01"]
    assert before[keys.ward("W3", "waiting_request")] == {"P7": str(behind.event_id)}

    await wipe(redis, settings.redis_key_prefix)
    assert await dump(redis, settings.redis_key_prefix) == {}
    report = await rebuild(settings, store, timeout_seconds=30)
    assert set(report.restored) == {
        "ward:W1",
        "ward:W2",
        "ward:W3",
        "ward:H1",
        "ward:I1",
        "level:hdu",
        "level:icu",
    }
    assert await dump(redis, settings.redis_key_prefix) == before

    # The rebuilt state works: the cleaned bed becomes available and goes to the waiting P3, and
    # P6's arrival confirms the reservation rebuilt for them.
    async with RunningStage(stage()):
        ready, arrival = reported(first_bed, BedStatus.AVAILABLE), admitted("P6", ward="W3")
        await publish(producer, settings, EVENTS_CLEAN, ready, arrival)
        causes = {ready.event_id, arrival.event_id}
        decisions = await collect(
            kafka.url,
            settings,
            SCHEDULING_DECISIONS,
            lambda events: (
                {e.cause_event_id for e in events if isinstance(e, BedAssigned)} >= causes
            ),
        )
    assigned = {
        e.patient_id: e.bed
        for e in decisions
        if isinstance(e, BedAssigned) and e.cause_event_id in causes
    }
    assert assigned == {"P3": first_bed, "P6": "W3-01"}
    assert await redis.hgetall(store.keys.ward("W1", "waiting_eligible")) == {}
    await redis.aclose()


async def test_a_scheduler_started_on_an_empty_redis_restores_it_first(
    settings_factory: Any, redis_server: Any, unique: str, producer: Any, kafka: Any, tmp_path: Path
) -> None:
    layout_file = tmp_path / "layout.toml"
    layout_file.write_text(LAYOUT_TOML)
    settings = await settings_factory(
        SchedulerSettings,
        redis_url=redis_server.url,
        redis_key_prefix=f"t{unique}",
        hospital_layout=str(layout_file),
        http_port=free_port(),
        consumer_group=f"g{unique}-scheduler",
    )
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    layout = layout_from_dict(__import__("tomllib").loads(LAYOUT_TOML))
    store = RedisBedStore(redis, settings.redis_key_prefix, layout=layout)

    async def running(until: Any) -> list[Any]:
        stop = asyncio.Event()
        task = asyncio.create_task(service.run(settings, stop))
        try:
            return await until()
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)

    patient = f"P-{uuid4().hex[:6]}"
    admission = admitted(patient)

    async def admit() -> list[Any]:
        await publish(producer, settings, EVENTS_CLEAN, admission)
        return await collect(
            kafka.url,
            settings,
            SCHEDULING_DECISIONS,
            lambda events: any(
                getattr(e, "cause_event_id", None) == admission.event_id for e in events
            ),
        )

    await running(admit)
    await eventually(lambda: _kafka_matches(settings, store))
    before = await dump(redis, settings.redis_key_prefix)
    assert patient in before[store.keys.ward("W1", "occupant")].values()

    await wipe(redis, settings.redis_key_prefix)

    async def started() -> list[Any]:
        await eventually(lambda: _kafka_matches(settings, store))
        return []

    await running(started)
    assert await dump(redis, settings.redis_key_prefix) == before
    await redis.aclose()


async def _status(store: RedisBedStore, ward: str, bed: str, status: BedStatus) -> bool:
    return (await store.statuses(ward)).get(bed) == status


async def _kafka_matches(settings: SchedulerSettings, store: RedisBedStore) -> bool:
    report = await rebuild(settings, store, check_only=True, timeout_seconds=30)
    return bool(report.scopes) and not report.differing
