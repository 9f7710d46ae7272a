"""Bed matching against the real embedded Redis: capabilities and bay sex policy decide which beds
a patient may be given; a patient with no eligible bed waits for one, and a freed bed goes to the
oldest waiting patient it fits. Through the scheduler (its decisions) and the store (its state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from schemas.admissions import PatientAdmitted, PatientDischarged
from schemas.beds import BedAssigned, BedRequestWaiting, BedStatusReported
from schemas.topics import EVENTS_CLEAN
from schemas.vocabulary import BedStatus
from services.common.hospital import layout_from_dict
from services.scheduler.app import Scheduler
from services.scheduler.store import RedisBedStore

START = datetime(2026, 1, 1, tzinfo=UTC)
LAYOUT = layout_from_dict(
    {
        "wards": [
            {
                # O-03 is the only ventilator bed.
                "id": "O",
                "level_of_care": "general",
                "beds": 3,
                "capabilities": {"O-03": ["ventilator"]},
            },
            {
                "id": "B",
                "level_of_care": "general",
                "bays": [
                    {"id": "F", "sex": "female", "beds": 1},  # B-01
                    {"id": "M", "sex": "male", "beds": 2},  # B-02, B-03
                ],
            },
        ]
    }
)


@pytest.fixture
async def store(redis: Redis, unique: str) -> RedisBedStore:
    bed_store = RedisBedStore(redis, f"t{unique}")
    await bed_store.ensure_layout(LAYOUT)
    return bed_store


@pytest.fixture
def scheduler(store: RedisBedStore) -> Scheduler:
    return Scheduler(store, LAYOUT)


class Clock:
    """Each event a second after the one before: the waiting queue's order is request time."""

    def __init__(self) -> None:
        self.at = START

    def envelope(self, source: str = "ehr") -> dict[str, Any]:
        self.at += timedelta(seconds=1)
        at = self.at
        return {"event_id": uuid4(), "occurred_at": at, "recorded_at": at, "source": source}


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def admit(scheduler: Scheduler, clock: Clock, patient: str, ward: str, **extra: Any) -> Any:
    event = PatientAdmitted(**clock.envelope(), patient_id=patient, ward=ward, **extra)
    return event, await scheduler(EVENTS_CLEAN, event)


def placed(outputs: Any) -> list[tuple[str, str]]:
    return [(o.event.patient_id, o.event.bed) for o in outputs if isinstance(o.event, BedAssigned)]


def waiting(outputs: Any) -> list[tuple[str, str]]:
    return [
        (o.event.patient_id, o.event.reason)
        for o in outputs
        if isinstance(o.event, BedRequestWaiting)
    ]


async def free_bed_of(scheduler: Scheduler, clock: Clock, patient: str, ward: str) -> Any:
    """Discharge the patient, then housekeeping cleans their bed and reports it available."""
    key = scheduler.store.keys.ward(ward, "patient_bed")
    bed = (await scheduler.store.redis.hgetall(key))[patient]
    await scheduler(
        EVENTS_CLEAN, PatientDischarged(**clock.envelope(), patient_id=patient, ward=ward)
    )
    outputs: list[Any] = []
    for status in (BedStatus.CLEANING, BedStatus.AVAILABLE):
        report = BedStatusReported(
            **clock.envelope("housekeeping"),
            ward=ward,
            bed=bed,
            status=status,  # type: ignore[arg-type]
        )
        outputs = list(await scheduler(EVENTS_CLEAN, report))
    return outputs


async def eligible_hash(store: RedisBedStore, ward: str) -> dict[str, str]:
    return await store.redis.hgetall(store.keys.ward(ward, "waiting_eligible"))


async def test_a_ventilator_patient_gets_the_ventilator_bed_though_a_lower_bed_is_free(
    scheduler: Scheduler, clock: Clock
) -> None:
    _, outputs = await admit(scheduler, clock, "V1", "O", needs=["ventilator"])
    assert placed(outputs) == [("V1", "O-03")]
    _, outputs = await admit(scheduler, clock, "P1", "O")  # no needs: the lowest free bed
    assert placed(outputs) == [("P1", "O-01")]


async def test_a_female_patient_is_never_placed_in_a_male_bay(
    scheduler: Scheduler, clock: Clock, store: RedisBedStore
) -> None:
    _, outputs = await admit(scheduler, clock, "F1", "B", sex="female")
    assert placed(outputs) == [("F1", "B-01")]
    _, outputs = await admit(scheduler, clock, "F2", "B", sex="female")
    assert placed(outputs) == []
    assert waiting(outputs) == [("F2", "no_matching_bed")]  # the male bay's beds are free
    for patient, sex in (("U1", None), ("O1", "other"), ("X1", "unknown")):
        _, outputs = await admit(scheduler, clock, patient, "B", **({"sex": sex} if sex else {}))
        assert waiting(outputs) == [(patient, "no_matching_bed")]  # no mixed bay here
    _, outputs = await admit(scheduler, clock, "M1", "B", sex="male")
    assert placed(outputs) == [("M1", "B-02")]  # after five older waiting patients
    # The male bed freed goes to no waiting patient (none of them fits it).
    outputs = await free_bed_of(scheduler, clock, "M1", "B")
    assert placed(outputs) == []
    assert (await store.statuses("B"))["B-02"] == BedStatus.AVAILABLE
    # The female bed freed goes to F2, the oldest waiting female.
    outputs = await free_bed_of(scheduler, clock, "F1", "B")
    assert placed(outputs) == [("F2", "B-01")]
    assert set(await eligible_hash(store, "B")) == {"U1", "O1", "X1"}


async def test_no_eligible_bed_waits_for_an_eligible_one_an_ineligible_freed_bed_goes_on(
    scheduler: Scheduler, clock: Clock, store: RedisBedStore
) -> None:
    _, outputs = await admit(scheduler, clock, "P1", "O")
    assert placed(outputs) == [("P1", "O-01")]
    _, outputs = await admit(scheduler, clock, "V1", "O", needs=["ventilator"])
    assert placed(outputs) == [("V1", "O-03")]
    _, outputs = await admit(scheduler, clock, "V2", "O", needs=["ventilator"])
    assert waiting(outputs) == [("V2", "no_matching_bed")]  # O-02 is free but fits not
    assert await eligible_hash(store, "O") == {"V2": "O-03"}
    _, outputs = await admit(scheduler, clock, "P2", "O")
    assert placed(outputs) == [("P2", "O-02")]  # V2 waits longer, O-02 is not for V2
    _, outputs = await admit(scheduler, clock, "P3", "O")
    assert waiting(outputs) == [("P3", "no_bed_available")]

    # O-01 frees: V2 is the oldest waiting, but it is not eligible for V2: P3 gets it.
    outputs = await free_bed_of(scheduler, clock, "P1", "O")
    assert placed(outputs) == [("P3", "O-01")]
    assert await eligible_hash(store, "O") == {"V2": "O-03"}
    # The ventilator bed frees: V2 gets it, and the ward's waiting hashes are clean.
    outputs = await free_bed_of(scheduler, clock, "V1", "O")
    assert placed(outputs) == [("V2", "O-03")]
    assert await eligible_hash(store, "O") == {}
    assert await store.waiting_count("O") == 0


async def test_a_redelivered_restricted_admission_changes_nothing(
    scheduler: Scheduler, clock: Clock, store: RedisBedStore
) -> None:
    await admit(scheduler, clock, "V1", "O", needs=["ventilator"])
    event, first = await admit(scheduler, clock, "V2", "O", needs=["ventilator"])
    before = (await store.snapshot("ward:O")).hashes
    again = await scheduler(EVENTS_CLEAN, event)
    assert waiting(again) == waiting(first) == [("V2", "no_matching_bed")]
    assert [o.event.event_id for o in again if isinstance(o.event, BedRequestWaiting)] == [
        o.event.event_id for o in first if isinstance(o.event, BedRequestWaiting)
    ]
    assert (await store.snapshot("ward:O")).hashes == before
    placed_event, outputs = await admit(scheduler, clock, "V3", "B", sex="male")
    assert placed(outputs) == [("V3", "B-02")]
    # Redelivered: the stored result again (same decision, same event id), no second bed.
    replayed = await scheduler(EVENTS_CLEAN, placed_event)
    assert placed(replayed) == [("V3", "B-02")]
    ids = [o.event.event_id for o in outputs if isinstance(o.event, BedAssigned)]
    assert [o.event.event_id for o in replayed if isinstance(o.event, BedAssigned)] == ids
    assert (await store.statuses("B"))["B-03"] == BedStatus.AVAILABLE


async def test_a_withdrawn_wait_leaves_no_eligibility_behind(
    scheduler: Scheduler, clock: Clock, store: RedisBedStore
) -> None:
    await admit(scheduler, clock, "V1", "O", needs=["ventilator"])
    await admit(scheduler, clock, "V2", "O", needs=["ventilator"])
    assert set(await eligible_hash(store, "O")) == {"V2"}
    await scheduler(EVENTS_CLEAN, PatientDischarged(**clock.envelope(), patient_id="V2", ward="O"))
    assert await eligible_hash(store, "O") == {}
    assert await store.waiting_count("O") == 0


async def test_the_store_gives_the_lowest_available_eligible_bed_or_any_bed_unrestricted(
    store: RedisBedStore,
) -> None:
    restricted = await store.allocate("O", "a", uuid4(), 1.0, eligible=["O-03", "O-02"])
    assert (restricted.outcome, restricted.bed) == ("applied", "O-02")  # by ward order
    anything = await store.allocate("O", "b", uuid4(), 2.0)
    assert (anything.outcome, anything.bed) == ("applied", "O-01")
    nothing = await store.allocate("O", "c", uuid4(), 3.0, eligible=[])
    assert (nothing.outcome, nothing.waiting_reason) == ("waiting", "no_matching_bed")
    assert await eligible_hash(store, "O") == {"c": ""}  # eligible for no bed of the ward
