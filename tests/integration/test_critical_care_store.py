"""Critical-care reservations in the Redis bed store, against the real embedded Redis: reserve,
queue per level of care, serve a freed bed, withdraw, idempotent, never a bed twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from schemas.vocabulary import BedStatus
from services.common.embedded import EmbeddedServer
from services.common.hospital import layout_from_dict
from services.scheduler.store import (
    BedChange,
    CareRequest,
    LevelResult,
    RedisBedStore,
    WardBedChange,
)

AVAILABLE = BedStatus.AVAILABLE
RESERVED = BedStatus.RESERVED
OCCUPIED = BedStatus.OCCUPIED
DIRTY = BedStatus.DIRTY
CLEANING = BedStatus.CLEANING
BLOCKED = BedStatus.BLOCKED

LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "W1", "level_of_care": "general", "beds": 3},
            {"id": "H1", "level_of_care": "hdu", "beds": 1},
            {"id": "I2", "level_of_care": "icu", "beds": 2},
            {"id": "I1", "level_of_care": "icu", "beds": 2},
        ]
    }
)
ICU = ("I1", "I2")  # sorted, as the scheduler passes them
HDU = ("H1",)


@pytest.fixture
async def store(redis: Redis, unique: str) -> RedisBedStore:
    bed_store = RedisBedStore(redis, f"t{unique}")
    await bed_store.ensure_layout(LAYOUT)
    return bed_store


def request(patient: str, at: float = 0.0, level: str = "icu") -> CareRequest:
    return CareRequest(uuid4(), patient, level, at, "W1", "waiting")


async def ask(store: RedisBedStore, req: CareRequest, event_id: UUID | None = None) -> LevelResult:
    wards = ICU if req.level == "icu" else HDU
    return await store.reserve(
        req.level, wards, event_id or req.request_id, step="request", request=req
    )


async def settle(store: RedisBedStore, level: str = "icu", close: UUID | None = None) -> Any:
    wards = ICU if level == "icu" else HDU
    return await store.reserve(level, wards, uuid4(), step="settle", close=close)


async def withdraw(store: RedisBedStore, request_id: UUID, level: str = "icu") -> LevelResult:
    wards = ICU if level == "icu" else HDU
    return await store.withdraw(level, wards, request_id, uuid4())


async def free_bed(store: RedisBedStore, ward: str, bed: str) -> None:
    """A patient in the bed leaves and housekeeping makes it available again."""
    for status in (DIRTY, CLEANING, AVAILABLE):
        result = await store.transition(ward, uuid4(), status, bed=bed)
        assert result.outcome == "applied", (status, result)


async def fill(store: RedisBedStore, ward: str, count: int) -> None:
    for n in range(count):
        assert (await store.allocate(ward, f"{ward}-P{n}", uuid4(), 0.0)).outcome == "applied"


async def all_statuses(store: RedisBedStore) -> dict[str, dict[str, BedStatus]]:
    return {ward.id: await store.statuses(ward.id) for ward in LAYOUT.wards}


async def test_a_request_reserves_the_lowest_bed_of_the_ward_with_most_free_beds(
    store: RedisBedStore,
) -> None:
    await fill(store, "I1", 1)  # I1 has 1 free bed, I2 has 2
    req = request("P1", at=5.0)
    result = await ask(store, req)
    assert result.outcome == "reserved"
    assert result.changes == (WardBedChange("I2", "I2-01", AVAILABLE, RESERVED),)
    (held,) = result.reserved
    assert (held.request_id, held.patient_id, held.ward, held.bed) == (
        req.request_id,
        "P1",
        "I2",
        "I2-01",
    )
    assert (held.requested_at_epoch, held.from_ward, held.state) == (5.0, "W1", "reserved")
    assert result.request == held
    assert (await store.statuses("I2"))["I2-01"] == RESERVED
    assert await store.critical_care_waiting("icu") == 0


async def test_wards_with_as_many_free_beds_tie_break_by_ward_id(store: RedisBedStore) -> None:
    first = await ask(store, request("P1"))  # I1 and I2 both have 2 free beds
    assert [(r.ward, r.bed) for r in first.reserved] == [("I1", "I1-01")]
    second = await ask(store, request("P2"))  # now I2 has more
    assert [(r.ward, r.bed) for r in second.reserved] == [("I2", "I2-01")]
    third = await ask(store, request("P3"))  # 1 and 1 again: I1
    assert [(r.ward, r.bed) for r in third.reserved] == [("I1", "I1-02")]


async def test_a_reservation_is_only_for_its_level_of_care(store: RedisBedStore) -> None:
    result = await ask(store, request("P1", level="hdu"))
    assert [(r.ward, r.bed) for r in result.reserved] == [("H1", "H1-01")]
    assert set((await store.statuses("I1")).values()) == {AVAILABLE}
    assert (await ask(store, request("P2", level="hdu"))).outcome == "waiting"
    assert await store.critical_care_waiting("hdu") == 1
    assert await store.critical_care_waiting("icu") == 0


async def test_reserved_beds_are_not_allocated_to_admissions(store: RedisBedStore) -> None:
    await ask(store, request("P1", level="hdu"))
    admitted = await store.allocate("H1", "Q1", uuid4(), 1.0)
    assert admitted.outcome == "waiting", "the only HDU bed is held for P1"


async def test_full_level_queues_fifo_and_a_freed_bed_serves_the_oldest(
    store: RedisBedStore,
) -> None:
    await fill(store, "I1", 2)
    await fill(store, "I2", 2)
    late, early = request("LATE", at=50.0), request("EARLY", at=20.0)
    waiting = await ask(store, late)
    assert (waiting.outcome, waiting.changes, waiting.reserved) == ("waiting", (), ())
    assert waiting.request is not None and waiting.request.state == "waiting"
    assert (await ask(store, early)).outcome == "waiting"
    assert await store.critical_care_waiting("icu") == 2

    await free_bed(store, "I2", "I2-02")
    assert (await store.statuses("I2"))["I2-02"] == AVAILABLE, "the ward script leaves it free"
    served = await settle(store)
    assert served.outcome == "served"
    assert served.changes == (WardBedChange("I2", "I2-02", AVAILABLE, RESERVED),)
    assert [(r.patient_id, r.request_id) for r in served.reserved] == [("EARLY", early.request_id)]
    assert await store.critical_care_waiting("icu") == 1
    assert (await settle(store)).changes == (), "nothing free: LATE keeps waiting"


async def test_patients_waiting_for_the_ward_itself_come_before_the_level_queue(
    store: RedisBedStore,
) -> None:
    await fill(store, "H1", 1)
    assert (await store.allocate("H1", "DIRECT", uuid4(), 1.0)).outcome == "waiting"
    assert (await ask(store, request("CC", level="hdu"))).outcome == "waiting"
    await store.transition("H1", uuid4(), DIRTY, bed="H1-01")
    await store.transition("H1", uuid4(), CLEANING, bed="H1-01")
    freed = await store.transition("H1", uuid4(), AVAILABLE, bed="H1-01")
    assert freed.assigned is not None and freed.assigned.patient_id == "DIRECT"
    assert (await settle(store, "hdu")).reserved == ()
    assert await store.critical_care_waiting("hdu") == 1


async def test_withdrawal_releases_the_bed_and_serves_the_next_request(
    store: RedisBedStore,
) -> None:
    await fill(store, "I1", 2)
    await fill(store, "I2", 1)
    holder, waiter = request("P1", at=1.0), request("P2", at=2.0)
    held = await ask(store, holder)
    assert [(r.ward, r.bed) for r in held.reserved] == [("I2", "I2-02")]
    assert (await ask(store, waiter)).outcome == "waiting"

    withdrawn = await withdraw(store, holder.request_id)

    assert withdrawn.outcome == "withdrawn"
    assert withdrawn.request is not None
    assert (withdrawn.request.request_id, withdrawn.request.bed) == (holder.request_id, "I2-02")
    assert withdrawn.changes == (
        WardBedChange("I2", "I2-02", RESERVED, AVAILABLE),
        WardBedChange("I2", "I2-02", AVAILABLE, RESERVED),
    )
    assert [(r.patient_id, r.bed) for r in withdrawn.reserved] == [("P2", "I2-02")]
    assert await store.critical_care_waiting("icu") == 0
    # P1's request is gone: withdrawing it again changes nothing.
    assert (await withdraw(store, holder.request_id)).outcome == "unknown"


async def test_withdrawal_of_the_last_reservation_frees_the_bed(store: RedisBedStore) -> None:
    req = request("P1", level="hdu")
    await ask(store, req)
    withdrawn = await withdraw(store, req.request_id, "hdu")
    assert withdrawn.changes == (WardBedChange("H1", "H1-01", RESERVED, AVAILABLE),)
    assert await store.statuses("H1") == {"H1-01": AVAILABLE}
    assert (await store.allocate("H1", "Q1", uuid4(), 0.0)).bed == "H1-01"


async def test_withdrawal_of_a_queued_request_drops_it(store: RedisBedStore) -> None:
    await fill(store, "H1", 1)
    first, second = request("P1", 1.0, "hdu"), request("P2", 2.0, "hdu")
    await ask(store, first)
    await ask(store, second)
    withdrawn = await withdraw(store, first.request_id, "hdu")
    assert (withdrawn.outcome, withdrawn.changes) == ("withdrawn", ())
    assert withdrawn.request is not None and withdrawn.request.state == "waiting"
    assert await store.critical_care_waiting("hdu") == 1
    await free_bed(store, "H1", "H1-01")
    assert [r.patient_id for r in (await settle(store, "hdu")).reserved] == ["P2"]


async def test_withdrawal_of_an_unknown_request_changes_nothing(
    store: RedisBedStore, redis: Redis
) -> None:
    await ask(store, request("P1"))
    before = await all_statuses(store)
    result = await withdraw(store, uuid4())
    assert (result.outcome, result.request, result.changes) == ("unknown", None, ())
    assert await all_statuses(store) == before


async def test_redelivered_request_changes_nothing_and_gives_the_same_result(
    store: RedisBedStore,
) -> None:
    req = request("P1")
    first = await ask(store, req)
    again = await ask(store, req)
    assert again == first
    statuses = await all_statuses(store)
    assert [s for ward in statuses.values() for s in ward.values()].count(RESERVED) == 1


async def test_redelivered_request_after_withdrawal_does_not_reserve_again(
    store: RedisBedStore,
) -> None:
    req = request("P1", level="hdu")
    first = await ask(store, req)
    await withdraw(store, req.request_id, "hdu")
    assert await ask(store, req) == first, "the same answer as the first time"
    assert await store.statuses("H1") == {"H1-01": AVAILABLE}


async def test_redelivered_withdrawal_does_not_release_a_second_time(
    store: RedisBedStore,
) -> None:
    holder, waiter = request("P1", 1.0, "hdu"), request("P2", 2.0, "hdu")
    await ask(store, holder)
    await ask(store, waiter)
    event_id = uuid4()
    first = await store.withdraw("hdu", HDU, holder.request_id, event_id)
    again = await store.withdraw("hdu", HDU, holder.request_id, event_id)
    assert again == first
    assert [r.patient_id for r in first.reserved] == ["P2"]
    assert await store.statuses("H1") == {"H1-01": RESERVED}


async def test_a_newer_request_of_the_same_patient_takes_over_the_older_one(
    store: RedisBedStore,
) -> None:
    old = request("P1", at=1.0, level="hdu")
    await ask(store, old)
    new = request("P1", at=9.0, level="hdu")
    result = await ask(store, new)
    assert (result.outcome, result.replaced, result.changes) == ("already", old.request_id, ())
    assert result.request is not None
    assert (result.request.request_id, result.request.bed) == (new.request_id, "H1-01")
    assert result.request.requested_at_epoch == 1.0, "it keeps the older request's time"
    assert (await withdraw(store, old.request_id, "hdu")).outcome == "unknown"
    assert (await withdraw(store, new.request_id, "hdu")).outcome == "withdrawn"
    assert await store.statuses("H1") == {"H1-01": AVAILABLE}


async def test_admission_without_bed_takes_the_reserved_bed(store: RedisBedStore) -> None:
    req = request("P1")
    held = (await ask(store, req)).reserved[0]
    placed = await store.allocate(held.ward or "", "P1", uuid4(), 3.0)
    assert (placed.outcome, placed.bed, placed.previous) == ("applied", held.bed, RESERVED)
    assert placed.changes[0].status == OCCUPIED
    assert placed.fulfilled is not None and placed.fulfilled.request_id == req.request_id
    assert placed.assigned is not None and placed.assigned.patient_id == "P1"
    # Closing the fulfilled request forgets it: a later withdrawal finds nothing to release.
    await settle(store, close=req.request_id)
    assert (await withdraw(store, req.request_id)).outcome == "unknown"
    assert (await store.statuses("I1"))["I1-01"] == OCCUPIED


async def test_a_withdrawal_after_the_patient_moved_in_leaves_the_bed_occupied(
    store: RedisBedStore,
) -> None:
    req = request("P1", level="hdu")
    await ask(store, req)
    await store.allocate("H1", "P1", uuid4(), 3.0)  # no close step ran (a crash, say)
    withdrawn = await withdraw(store, req.request_id, "hdu")
    assert (withdrawn.outcome, withdrawn.changes) == ("closed", ())
    assert await store.statuses("H1") == {"H1-01": OCCUPIED}


async def test_a_named_bed_wins_and_the_reservation_is_released(store: RedisBedStore) -> None:
    req = request("P1")
    held = (await ask(store, req)).reserved[0]
    assert (held.ward, held.bed) == ("I1", "I1-01")
    placed = await store.transition("I1", uuid4(), OCCUPIED, bed="I1-02", patient_id="P1")
    assert placed.changes == (
        BedChange("I1-02", AVAILABLE, OCCUPIED),
        BedChange("I1-01", RESERVED, AVAILABLE),
    )
    assert placed.released is not None and placed.released.request_id == req.request_id
    assert placed.fulfilled == placed.released
    assert await store.statuses("I1") == {"I1-01": AVAILABLE, "I1-02": OCCUPIED}


async def test_another_patient_placed_in_a_reserved_bed_displaces_the_request(
    store: RedisBedStore,
) -> None:
    req = request("P1", at=4.0, level="hdu")
    await ask(store, req)
    taken = await store.transition("H1", uuid4(), OCCUPIED, bed="H1-01", patient_id="Q1")
    assert taken.changes == (BedChange("H1-01", RESERVED, OCCUPIED),)
    assert taken.displaced is not None
    assert (taken.displaced.request_id, taken.displaced.patient_id) == (req.request_id, "P1")
    requeued = await store.reserve(
        "hdu", HDU, uuid4(), step="settle", request=taken.displaced, requeue=True
    )
    assert requeued.outcome == "waiting"
    assert requeued.request is not None and requeued.request.requested_at_epoch == 4.0
    assert await store.critical_care_waiting("hdu") == 1


async def test_a_blocked_reserved_bed_displaces_the_request_to_another_bed(
    store: RedisBedStore,
) -> None:
    req = request("P1")
    await ask(store, req)  # I1-01
    blocked = await store.transition("I1", uuid4(), BLOCKED, bed="I1-01")
    assert blocked.displaced is not None
    requeued = await store.reserve(
        "icu", ICU, uuid4(), step="settle", request=blocked.displaced, requeue=True
    )
    assert requeued.outcome == "reserved"
    assert [(r.ward, r.bed) for r in requeued.reserved] == [("I2", "I2-01")]


async def test_no_bed_reserved_twice_across_concurrent_replicas(
    redis: Redis, redis_server: EmbeddedServer, unique: str
) -> None:
    other = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        replicas = [
            RedisBedStore(redis, f"t{unique}", layout=LAYOUT),
            RedisBedStore(other, f"t{unique}", layout=LAYOUT),
        ]
        await replicas[0].ensure_layout(LAYOUT)
        requests = [request(f"P{n:03d}", at=float(n)) for n in range(60)]
        results = await asyncio.gather(
            *(ask(replicas[n % 2], req) for n, req in enumerate(requests))
        )
    finally:
        await other.aclose()
    held = [r for result in results for r in result.reserved]
    assert len(held) == 4, "I1 and I2 have 4 beds"
    assert len({(r.ward, r.bed) for r in held}) == 4, "a bed was reserved twice"
    assert sum(result.outcome == "waiting" for result in results) == 56
    assert await replicas[0].critical_care_waiting("icu") == 56
    statuses = await all_statuses(replicas[0])
    assert set(statuses["I1"].values()) == set(statuses["I2"].values()) == {RESERVED}


async def test_a_store_that_does_not_know_the_wards_level_refuses_a_level_script(
    redis: Redis, unique: str
) -> None:
    """Its keys for I1 would have I1's own tag: state split from the replicas that know the
    layout (and CROSSSLOT on a cluster). It says so instead of writing anything."""
    blind = RedisBedStore(redis, f"t{unique}")
    with pytest.raises(ValueError, match="not icu wards of the store's layout"):
        await ask(blind, request("P1"))
    assert [key async for key in redis.scan_iter(f"t{unique}:*")] == []


async def test_concurrent_requests_and_withdrawals_keep_queue_and_beds_consistent(
    store: RedisBedStore,
) -> None:
    requests = [request(f"P{n}", at=float(n), level="hdu") for n in range(10)]
    await asyncio.gather(*(ask(store, req) for req in requests))
    await asyncio.gather(*(withdraw(store, req.request_id, "hdu") for req in requests[:9]))
    assert await store.critical_care_waiting("hdu") == 0
    assert await store.statuses("H1") == {"H1-01": RESERVED}
    key = store.keys.ward("H1", "reservation")
    (holder,) = [json.loads(raw)["patient"] for raw in (await store.redis.hgetall(key)).values()]
    assert holder == "P9"
