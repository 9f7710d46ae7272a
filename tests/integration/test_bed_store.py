"""The Redis bed store against the real embedded Redis: atomic, idempotent, never a bed twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from schemas.vocabulary import BedStatus
from services.common.embedded import EmbeddedServer
from services.common.hospital import HospitalLayout, layout_from_dict
from services.scheduler.store import BedChange, ChangeResult, RedisBedStore

AVAILABLE = BedStatus.AVAILABLE
OCCUPIED = BedStatus.OCCUPIED
DIRTY = BedStatus.DIRTY
CLEANING = BedStatus.CLEANING
BLOCKED = BedStatus.BLOCKED


def one_ward(beds: int | list[str], ward: str = "W1") -> HospitalLayout:
    return layout_from_dict({"wards": [{"id": ward, "level_of_care": "general", "beds": beds}]})


@pytest.fixture
async def other_redis(redis_server: EmbeddedServer) -> AsyncIterator[Redis]:
    """A second, independent connection pool, as a second scheduler replica would have."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis: Redis, unique: str) -> RedisBedStore:
    return RedisBedStore(redis, f"t{unique}")


async def ward_state(redis: Redis, prefix: str) -> dict[str, bytes | None]:
    """Every bed-state key of the store (not the remembered event ids), serialised."""
    keys = sorted([k async for k in redis.scan_iter(f"{prefix}:*") if ":seen:" not in k])
    assert keys, "the store keeps its state under its prefix"
    return {key: await redis.dump(key) for key in keys}


async def admit(store: RedisBedStore, patient: str, at: float = 0.0, ward: str = "W1") -> Any:
    return await store.allocate(ward, patient, uuid4(), at)


async def discharge(store: RedisBedStore, patient: str, ward: str = "W1") -> ChangeResult:
    return await store.transition(ward, uuid4(), DIRTY, patient_id=patient)


async def report(store: RedisBedStore, bed: str, status: BedStatus, ward: str = "W1") -> Any:
    return await store.transition(ward, uuid4(), status, bed=bed)


async def make_available(store: RedisBedStore, bed: str) -> ChangeResult:
    """Housekeeping takes a dirty bed through cleaning back to available."""
    assert (await report(store, bed, CLEANING)).outcome == "applied"
    return await report(store, bed, AVAILABLE)


async def test_ensure_layout_creates_every_bed_available(store: RedisBedStore) -> None:
    await store.ensure_layout(
        layout_from_dict(
            {
                "wards": [
                    {"id": "W1", "level_of_care": "general", "beds": 3},
                    {"id": "W2", "level_of_care": "icu", "beds": ["icu-a", "icu-b"]},
                ]
            }
        )
    )
    assert await store.statuses("W1") == {
        "W1-01": AVAILABLE,
        "W1-02": AVAILABLE,
        "W1-03": AVAILABLE,
    }
    assert await store.statuses("W2") == {"icu-a": AVAILABLE, "icu-b": AVAILABLE}
    assert await store.waiting_count("W1") == 0


async def test_ensure_layout_again_keeps_existing_state(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(2))
    first = await admit(store, "P1")
    await store.ensure_layout(one_ward(3))  # a restart, with one bed added to the ward
    assert await store.statuses("W1") == {
        first.bed: OCCUPIED,
        "W1-02": AVAILABLE,
        "W1-03": AVAILABLE,
    }
    # The occupied bed was not put back among the free ones.
    assert (await admit(store, "P2")).bed == "W1-02"
    assert (await admit(store, "P3")).bed == "W1-03"
    assert (await admit(store, "P4")).outcome == "waiting"


async def test_allocate_gives_distinct_beds_in_ward_order(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(["z-bed", "a-bed", "m-bed"]))
    results = [await admit(store, f"P{n}") for n in range(3)]
    assert [r.outcome for r in results] == ["applied"] * 3
    assert [r.bed for r in results] == ["z-bed", "a-bed", "m-bed"]
    assert results[0].changes == (BedChange("z-bed", AVAILABLE, OCCUPIED),)
    assert results[0].assigned is not None
    assert (results[0].assigned.patient_id, results[0].assigned.bed) == ("P0", "z-bed")
    assert set((await store.statuses("W1")).values()) == {OCCUPIED}


async def test_a_freed_bed_goes_back_to_its_place_in_ward_order(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(3))
    await admit(store, "P1")  # W1-01
    await discharge(store, "P1")
    await make_available(store, "W1-01")
    assert (await admit(store, "P2")).bed == "W1-01"
    assert (await admit(store, "P3")).bed == "W1-02"


async def test_allocate_is_idempotent_per_event_id(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(3))
    event_id = uuid4()
    first = await store.allocate("W1", "P1", event_id, 10.0)
    again = await store.allocate("W1", "P1", event_id, 10.0)
    assert first.outcome == "applied"
    assert again == first
    statuses = await store.statuses("W1")
    assert list(statuses.values()).count(OCCUPIED) == 1


async def test_allocate_for_a_patient_already_in_a_bed_gives_the_same_bed(
    store: RedisBedStore,
) -> None:
    await store.ensure_layout(one_ward(3))
    first = await admit(store, "P1")
    again = await admit(store, "P1")  # a different event about the same patient
    assert (again.outcome, again.bed, again.changes) == ("already", first.bed, ())
    assert list((await store.statuses("W1")).values()).count(OCCUPIED) == 1


async def test_full_ward_queues_and_a_freed_bed_goes_to_the_oldest_waiting(
    store: RedisBedStore,
) -> None:
    await store.ensure_layout(one_ward(2))
    await admit(store, "P1", at=1.0)
    await admit(store, "P2", at=2.0)
    third = await admit(store, "P3", at=3.0)
    fourth = await admit(store, "P4", at=4.0)
    assert (third.outcome, third.bed, third.changes, third.assigned) == ("waiting", None, (), None)
    assert fourth.outcome == "waiting"
    assert await store.waiting_count("W1") == 2

    assert (await discharge(store, "P1")).changes == (BedChange("W1-01", OCCUPIED, DIRTY),)
    assert await store.waiting_count("W1") == 2, "a dirty bed is not given to anyone"
    freed = await make_available(store, "W1-01")

    assert freed.outcome == "applied"
    assert freed.changes == (
        BedChange("W1-01", CLEANING, AVAILABLE),
        BedChange("W1-01", AVAILABLE, OCCUPIED),
    )
    assert freed.assigned is not None
    assert (freed.assigned.patient_id, freed.assigned.bed) == ("P3", "W1-01")
    assert freed.assigned.requested_at_epoch == 3.0
    assert (await store.statuses("W1"))["W1-01"] == OCCUPIED
    assert await store.waiting_count("W1") == 1
    # P3 now holds W1-01: asking again says so, and their discharge frees that bed.
    assert (await admit(store, "P3")).bed == "W1-01"
    assert (await discharge(store, "P3")).bed == "W1-01"


async def test_waiting_order_follows_request_time_not_arrival(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(1))
    await admit(store, "P1", at=1.0)
    await admit(store, "LATE", at=50.0)
    await admit(store, "EARLY", at=20.0)  # arrived later, asked earlier
    await discharge(store, "P1")
    freed = await make_available(store, "W1-01")
    assert freed.assigned is not None
    assert freed.assigned.patient_id == "EARLY"


async def test_discharge_frees_the_patient_mapping(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(2))
    first = await admit(store, "P1")
    released = await discharge(store, "P1")
    assert (released.outcome, released.bed, released.previous) == ("applied", first.bed, OCCUPIED)
    assert (await store.statuses("W1"))[first.bed] == DIRTY
    # P1 has no bed now: a second discharge finds none, a readmission gets a new bed.
    assert (await discharge(store, "P1")).outcome == "no_bed"
    readmitted = await admit(store, "P1")
    assert (readmitted.outcome, readmitted.bed) == ("applied", "W1-02")


async def test_transition_is_idempotent_per_event_id(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(1))
    await admit(store, "P1", at=1.0)
    await admit(store, "P2", at=2.0)
    await admit(store, "P3", at=3.0)
    await discharge(store, "P1")
    await report(store, "W1-01", CLEANING)
    event_id = uuid4()
    first = await store.transition("W1", event_id, AVAILABLE, bed="W1-01")
    again = await store.transition("W1", event_id, AVAILABLE, bed="W1-01")
    assert again == first
    assert first.assigned is not None
    assert first.assigned.patient_id == "P2"
    assert await store.waiting_count("W1") == 1, "the redelivery must not assign P3 as well"


@pytest.mark.parametrize(
    ("setup", "target"),
    [("available", CLEANING), ("occupied", AVAILABLE), ("occupied", BLOCKED), ("dirty", AVAILABLE)],
    ids=["available->cleaning", "occupied->available", "occupied->blocked", "dirty->available"],
)
async def test_illegal_transition_is_refused_and_changes_nothing(
    store: RedisBedStore, redis: Redis, setup: str, target: BedStatus
) -> None:
    await store.ensure_layout(one_ward(2))
    if setup in ("occupied", "dirty"):
        await admit(store, "P1")
    if setup == "dirty":
        await discharge(store, "P1")
    before = await ward_state(redis, store.prefix)

    refused = await report(store, "W1-01", target)

    assert (refused.outcome, refused.bed, refused.previous) == ("refused", "W1-01", setup)
    assert (refused.changes, refused.assigned) == ((), None)
    assert await ward_state(redis, store.prefix) == before


async def test_refused_discharge_of_occupied_bed_to_available_keeps_the_patient(
    store: RedisBedStore,
) -> None:
    await store.ensure_layout(one_ward(2))
    await admit(store, "P1")
    assert (await report(store, "W1-01", AVAILABLE)).outcome == "refused"
    assert (await admit(store, "P1")).outcome == "already"
    assert (await discharge(store, "P1")).bed == "W1-01"


async def test_unknown_bed_is_reported_and_not_created(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(2))
    result = await report(store, "W1-99", BLOCKED)
    assert (result.outcome, result.bed, result.changes) == ("unknown_bed", "W1-99", ())
    assert set(await store.statuses("W1")) == {"W1-01", "W1-02"}


async def test_discharge_of_a_waiting_patient_withdraws_them(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(1))
    await admit(store, "P1", at=1.0)
    await admit(store, "P2", at=2.0)
    await admit(store, "P3", at=3.0)
    withdrawn = await discharge(store, "P2")
    assert (withdrawn.outcome, withdrawn.changes) == ("withdrawn", ())
    assert await store.waiting_count("W1") == 1
    await discharge(store, "P1")
    freed = await make_available(store, "W1-01")
    assert freed.assigned is not None
    assert freed.assigned.patient_id == "P3"


async def test_blocked_bed_is_not_allocated_until_released(store: RedisBedStore) -> None:
    await store.ensure_layout(one_ward(2))
    assert (await report(store, "W1-01", BLOCKED)).outcome == "applied"
    assert (await admit(store, "P1")).bed == "W1-02"
    assert (await admit(store, "P2")).outcome == "waiting"
    assert (await report(store, "W1-01", AVAILABLE)).outcome == "refused", "clean it first"
    assert (await report(store, "W1-01", CLEANING)).outcome == "applied"
    unblocked = await report(store, "W1-01", AVAILABLE)
    assert unblocked.assigned is not None
    assert (unblocked.assigned.patient_id, unblocked.assigned.bed) == ("P2", "W1-01")


async def test_wards_do_not_share_beds_or_queues(store: RedisBedStore) -> None:
    await store.ensure_layout(
        layout_from_dict(
            {
                "wards": [
                    {"id": "W1", "level_of_care": "general", "beds": 1},
                    {"id": "W2", "level_of_care": "general", "beds": 1},
                ]
            }
        )
    )
    assert (await admit(store, "P1", ward="W1")).bed == "W1-01"
    assert (await admit(store, "P2", ward="W1")).outcome == "waiting"
    assert (await admit(store, "P3", ward="W2")).bed == "W2-01"
    assert await store.waiting_count("W2") == 0


async def test_no_double_allocation_across_concurrent_replicas(
    redis: Redis, other_redis: Redis, unique: str
) -> None:
    beds, patients = 50, 200
    layout = one_ward(beds)
    replicas = [
        RedisBedStore(redis, f"t{unique}", layout=layout),
        RedisBedStore(other_redis, f"t{unique}", layout=layout),
    ]
    await replicas[0].ensure_layout(layout)

    results = await asyncio.gather(
        *(replicas[n % 2].allocate("W1", f"P{n:03d}", uuid4(), float(n)) for n in range(patients))
    )

    assigned = [r for r in results if r.outcome == "applied"]
    waiting = [r for r in results if r.outcome == "waiting"]
    assert len(assigned) == beds
    assert len(waiting) == patients - beds
    given = [r.bed for r in assigned]
    assert len(set(given)) == beds, "a bed was given twice"
    statuses = await replicas[1].statuses("W1")
    assert set(given) == set(statuses)
    assert set(statuses.values()) == {OCCUPIED}
    assert await replicas[1].waiting_count("W1") == patients - beds
    occupants = await redis.hgetall(replicas[0].keys.ward("W1", "occupant"))
    assert len(occupants) == beds
    assert len(set(occupants.values())) == beds, "a patient holds two beds"


async def next_message(pubsub: Any, timeout_seconds: float = 10.0) -> ChangeResult:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            return ChangeResult.from_json(message["data"])
    raise AssertionError(f"no message on the channel in {timeout_seconds} s")


async def test_every_applied_change_is_published(store: RedisBedStore, other_redis: Redis) -> None:
    await store.ensure_layout(one_ward(1))
    pubsub = other_redis.pubsub()
    await pubsub.subscribe(store.channel)
    try:
        confirmation = await pubsub.get_message(timeout=5)
        assert confirmation is not None
        assert confirmation["type"] == "subscribe"

        admitted = await admit(store, "P1", at=1.0)
        assert await next_message(pubsub) == admitted

        # Not applied, so not published: a refusal, a queued patient, an unknown bed, a replay.
        assert (await report(store, "W1-01", CLEANING)).outcome == "refused"
        assert (await admit(store, "P2", at=2.0)).outcome == "waiting"
        assert (await report(store, "nope", BLOCKED)).outcome == "unknown_bed"
        replay_id: UUID = uuid4()
        released = await store.transition("W1", replay_id, DIRTY, patient_id="P1")
        await store.transition("W1", replay_id, DIRTY, patient_id="P1")

        assert await next_message(pubsub) == released
        cleaning = await report(store, "W1-01", CLEANING)
        assert await next_message(pubsub) == cleaning
        freed = await report(store, "W1-01", AVAILABLE)
        published = await next_message(pubsub)
        assert published == freed
        assert published.assigned is not None
        assert published.assigned.patient_id == "P2"
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()
